"""Gates: where a person decides. One :class:`GateActor` per pending gate (the setup
choice, an agent's question, a tool call's permission, a room's outbound message),
answered once, expiring closed, recorded in the session's stream and restored from it
after a restart; :class:`GateRegistry` opens and finds them; :class:`ToolPolicy` says
which tool calls need one."""

from .actor import (
    GATE_KINDS,
    Cancel,
    Gate,
    GateActor,
    GateClosed,
    GateError,
    GateExists,
    GateKind,
    GateNotFound,
    GateOutcome,
    InvalidAnswer,
    Resolve,
    gate_name,
    normalize_answer,
)
from .policy import SAFE_TOOLS, Decision, ToolPolicy
from .registry import (
    DEFAULT_TIMEOUTS,
    GateRecord,
    GateRegistry,
    open_gate_supervisor,
    pending_gates,
)

__all__ = [
    "DEFAULT_TIMEOUTS",
    "GATE_KINDS",
    "SAFE_TOOLS",
    "Cancel",
    "Decision",
    "Gate",
    "GateActor",
    "GateClosed",
    "GateError",
    "GateExists",
    "GateKind",
    "GateNotFound",
    "GateOutcome",
    "GateRecord",
    "GateRegistry",
    "InvalidAnswer",
    "Resolve",
    "ToolPolicy",
    "gate_name",
    "normalize_answer",
    "open_gate_supervisor",
    "pending_gates",
]
