"""Unit tests of the event contracts: snapshots, the breaking-change detector, the envelope."""
