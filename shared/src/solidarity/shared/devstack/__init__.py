"""The local stack without Docker: embedded PostgreSQL, the embedded broker, a mail sink."""
