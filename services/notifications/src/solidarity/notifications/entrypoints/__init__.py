"""How the world reaches the service: Kafka consumers, HTTP routes, the command line."""
