"""The `solidarity` command line: the local stack, the services and the event contracts."""
