"""A stand-in service for the local-stack tests: answers /health with the settings it was given."""
