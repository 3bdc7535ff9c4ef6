"""Reliability, bad-input and security scenarios against the real services (issue 8)."""
