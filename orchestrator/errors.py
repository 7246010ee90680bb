"""Errors the domain's actors answer with (not crashes)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, TypeVar

from actors import Refused
from transport import StreamError

__all__ = ["StoreUnavailable", "answers_store_errors"]

A = TypeVar("A")


class StoreUnavailable(Refused):
    """The event store refused a write (out of disk, a remote server gone): nothing
    was changed; the request may be tried again (HTTP 503)."""


def answers_store_errors(
    handle: Callable[[A, Any], Coroutine[Any, Any, Any]],
) -> Callable[[A, Any], Coroutine[Any, Any, Any]]:
    """An actor's ``handle`` that answers a refused write with :class:`StoreUnavailable`
    (the requester is told, the actor lives on) instead of crashing on it."""

    @wraps(handle)
    async def handled(self: A, msg: Any) -> Any:
        try:
            return await handle(self, msg)
        except (StreamError, UnicodeEncodeError) as exc:  # a lone surrogate is unwritable
            raise StoreUnavailable(f"The event store refused the write: {exc}") from exc

    return handled
