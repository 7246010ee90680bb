"""The domain layer: sessions, rooms, gates, bridges, sandboxes, the HTTP API and the CLI."""
