"""Bridges from agent processes to session events: Claude Code (claude-agent-sdk)."""
