"""Fast tests with fakes and no infrastructure."""
