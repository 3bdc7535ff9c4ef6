"""Unit tests of the catalog's domain rules."""
