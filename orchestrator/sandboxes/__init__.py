"""Sandbox providers: Docker and local."""
