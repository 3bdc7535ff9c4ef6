"""The catalog's domain: aggregates and their rules, free of I/O."""
