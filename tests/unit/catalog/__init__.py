"""Unit tests of the catalog service: domain rules, handlers and entrypoints, with fakes."""
