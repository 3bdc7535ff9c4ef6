"""Unit tests of the catalog's handlers, loader and republish, on the fake unit of work."""
