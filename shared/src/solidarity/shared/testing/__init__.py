"""Test support: infrastructure selection and per-test isolation, shipped as a pytest plugin."""
