"""PostgreSQL repositories and metrics of the registration service."""
