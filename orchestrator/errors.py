"""Errors the domain's actors answer with (not crashes)."""

from __future__ import annotations

from actors import Refused

__all__ = ["StoreUnavailable"]


class StoreUnavailable(Refused):
    """The event store refused a write (out of disk, a remote server gone): nothing
    was changed; the request may be tried again (HTTP 503)."""
