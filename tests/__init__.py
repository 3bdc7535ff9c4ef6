"""The platform's tests, split by folder and marker: unit, integration, e2e, reliability, bench."""
