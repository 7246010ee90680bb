"""Fixtures of the room tests: the Docker provider of the session tests."""

from ..sessions.test_docker_sessions import provider

__all__ = ["provider"]
