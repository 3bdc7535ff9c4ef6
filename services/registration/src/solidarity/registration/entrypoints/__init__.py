"""HTTP routes, Kafka consumers and the CLI of the registration service."""
