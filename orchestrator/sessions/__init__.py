"""Sessions: SessionActor, the registry, the workspace."""
