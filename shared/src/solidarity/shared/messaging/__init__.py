"""The messaging kit: transactional outbox, relay, inbox, and the consumer runner with its DLQ."""
