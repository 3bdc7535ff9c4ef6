"""Integration tests of the catalog: HTTP to PostgreSQL to outbox to Kafka."""
