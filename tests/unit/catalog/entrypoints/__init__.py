"""Unit tests of the catalog's HTTP API, campaign files and CLI."""
