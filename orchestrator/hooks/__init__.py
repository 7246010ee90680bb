"""Claude Code hooks: payload mapping and the installer for local projects."""
