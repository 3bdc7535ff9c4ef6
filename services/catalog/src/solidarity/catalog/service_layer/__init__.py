"""The service layer: commands, their handlers, queries and the unit of work."""
