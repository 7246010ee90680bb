"""A generic actor runtime on trio. Knows nothing of agents.

- :class:`Actor`: state plus ``on_start`` / ``handle`` / ``on_stop``; one task handles
  its messages one at a time, from a bounded mailbox.
- :class:`ActorRef`: ``send`` (tell, with back-pressure), ``try_send`` (never waits),
  ``ask`` (request and reply, with a timeout), ``stop``.
- :class:`Supervisor`: children in its own nursery, restart policies and strategies,
  restart intensity.
- :class:`ActorSystem`: the root, as ``async with``; :class:`Registry`: live actors by
  name.

Errors derive from :class:`ActorError` (see ``actors._errors`` for the tree).
"""

from ._core import (
    DEFAULT_ASK_TIMEOUT,
    DEFAULT_MAILBOX_SIZE,
    Actor,
    ActorContext,
    ActorRef,
    ActorState,
    MailboxStats,
    shielded,
)
from ._errors import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    NameTaken,
    Refused,
    RestartIntensityExceeded,
    SpawnError,
)
from ._registry import Registry
from ._supervisor import (
    ChildInfo,
    ChildSpec,
    CrashReport,
    Restart,
    RestartIntensity,
    StartChild,
    StopChild,
    Strategy,
    Supervisor,
    WhichChildren,
    start_child,
    stop_child,
    which_children,
)
from ._system import ActorSystem

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorContext",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorState",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "ChildInfo",
    "ChildSpec",
    "CrashReport",
    "MailboxFull",
    "MailboxStats",
    "NameTaken",
    "Refused",
    "Registry",
    "Restart",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "SpawnError",
    "StartChild",
    "StopChild",
    "Strategy",
    "Supervisor",
    "WhichChildren",
    "shielded",
    "start_child",
    "stop_child",
    "which_children",
]
