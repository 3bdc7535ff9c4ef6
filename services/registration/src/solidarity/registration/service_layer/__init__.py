"""Commands, handlers and the unit of work of the registration service."""
