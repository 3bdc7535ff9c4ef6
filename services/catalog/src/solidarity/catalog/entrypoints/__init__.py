"""Entrypoints: the admin HTTP API, the campaign file reader and the catalog commands."""
