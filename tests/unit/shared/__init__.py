"""Unit tests of the shared library."""
