"""Errors raised by the actor runtime.

Every error derives from :class:`ActorError`::

    ActorError
     ├── ActorStopped              the actor is gone, or went away while you waited
     │    └── ActorCrashed         ... because handling your message raised; see __cause__
     ├── MailboxFull               try_send() found the mailbox full (nothing was queued)
     ├── AskTimeout                no reply within the ask's timeout (also a TimeoutError)
     ├── NameTaken                 a live actor is already registered under that name
     ├── SpawnError                the actor's on_start() raised; see __cause__
     ├── RestartIntensityExceeded  a supervisor saw too many restarts and gave up
     └── Refused                   raised by a handler to refuse one message: the asker gets
                                   it back and the actor keeps running

Errors carry the actor's name in ``.actor`` so that callers can report it.
"""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorStopped",
    "AskTimeout",
    "MailboxFull",
    "NameTaken",
    "Refused",
    "RestartIntensityExceeded",
    "SpawnError",
]


class ActorError(Exception):
    """Root of the actor runtime's errors."""

    def __init__(self, message: str, *, actor: str | None = None) -> None:
        super().__init__(message)
        self.actor = actor


class ActorStopped(ActorError):
    """The actor is not running: a message to it was not delivered, or an ask
    pending on it will never be answered."""


class ActorCrashed(ActorStopped):
    """Handling the message raised an error, which crashed the actor.

    The handler's error is the ``__cause__``.
    """


class MailboxFull(ActorError):
    """``try_send`` found the mailbox at capacity; the message was not queued.

    Use ``await ref.send(msg)`` to wait for room instead (back-pressure).
    """

    def __init__(self, message: str, *, actor: str | None = None, capacity: int) -> None:
        super().__init__(message, actor=actor)
        self.capacity = capacity


class AskTimeout(ActorError, TimeoutError):
    """No reply came within the ask's timeout. The message may still be handled later;
    its reply is then dropped."""

    def __init__(self, message: str, *, actor: str | None = None, timeout: float) -> None:
        super().__init__(message, actor=actor)
        self.timeout = timeout


class NameTaken(ActorError):
    """A live actor is already registered under this name."""


class SpawnError(ActorError):
    """The actor's ``on_start`` raised (its error is the ``__cause__``); the actor was
    cleaned up and never ran."""


class RestartIntensityExceeded(ActorError):
    """A supervisor restarted children more than ``max_restarts`` times within
    ``within`` seconds; it stopped its children and failed, leaving the decision to its
    own parent."""

    def __init__(
        self, message: str, *, actor: str | None = None, max_restarts: int, within: float
    ) -> None:
        super().__init__(message, actor=actor)
        self.max_restarts = max_restarts
        self.within = within


class Refused(ActorError):
    """Raise this (or a subclass) from a handler to refuse one message without crashing.

    The asker of the message receives this very exception; a told message is logged and
    dropped. The actor keeps running. Domain layers may list their own error types in
    ``Actor.refusals`` to the same effect.
    """
