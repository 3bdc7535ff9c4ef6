"""Adapters: the asyncpg repositories behind the unit of work."""
