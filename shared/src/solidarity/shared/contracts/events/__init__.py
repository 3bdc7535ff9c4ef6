"""Every cross-service event of the platform, grouped by the service that publishes it."""
