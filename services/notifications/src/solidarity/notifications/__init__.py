"""The notifications service of the Solidarity Week platform."""
