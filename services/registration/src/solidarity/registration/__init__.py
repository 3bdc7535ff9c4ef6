"""The registration service of the Solidarity Week platform."""
