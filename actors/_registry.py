"""The registry: live actors by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, final

from ._errors import NameTaken

if TYPE_CHECKING:
    from ._core import ActorRef, _Cell

__all__ = ["Registry"]


@final
class Registry:
    """Finds live actors by name.

    An actor spawned with a ``name`` is registered before its ``on_start`` runs and is
    removed the moment it begins to stop, so a lookup never returns an actor that has
    started shutting down. A restarted actor registers again under the same name, with
    a new :class:`ActorRef`.

    Obtained from :attr:`ActorSystem.registry` (no public constructor).
    """

    __slots__ = ("_cells",)

    def __init__(self) -> None:
        self._cells: dict[str, _Cell] = {}

    def lookup(self, name: str) -> ActorRef | None:
        """The live actor registered under ``name``, or ``None``."""
        cell = self._cells.get(name)
        return None if cell is None else cell.ref

    def __contains__(self, name: object) -> bool:
        return name in self._cells

    def __len__(self) -> int:
        return len(self._cells)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._cells))

    def names(self) -> list[str]:
        """The names registered now, in registration order."""
        return list(self._cells)

    # -- used by the runtime -------------------------------------------------------

    def _add(self, name: str, cell: _Cell) -> None:
        if name in self._cells:
            raise NameTaken(f"an actor named {name!r} is already running", actor=name)
        self._cells[name] = cell

    def _remove(self, name: str, cell: _Cell) -> None:
        if self._cells.get(name) is cell:
            del self._cells[name]
