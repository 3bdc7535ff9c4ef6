"""The catalog service of the Solidarity Week platform."""
