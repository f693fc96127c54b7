"""OpenTelemetry metric exporters written for yokedcache (the SDK is required here)."""
