"""Shared foundation of the Solidarity Week platform: contracts, messaging kit, local stack, CLI."""
