"""Implementations of the service's ports: SQL, SMTP, webhooks, templates, calendar, clock."""
