"""What every backend receives from bmcd when it is created."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Database(Protocol):
    """bmcd's state database, shared with backends that keep state in it."""

    async def migrate(
        self,
        component: str,
        migrations: Sequence[Callable[[sqlite3.Connection], None]],
    ) -> None:
        """Bring ``component``'s tables up to date.

        Args:
            component: a name unique to the backend, e.g. ``"accounts.embedded"``.
            migrations: the schema steps in order; step N runs once, in a
                transaction, when the stored version is below N.
        """

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(conn)`` as one transaction on the database thread.

        Returns:
            What ``work`` returned; an exception it raised rolls back and
            propagates.
        """


@dataclass(frozen=True)
class BackendContext:
    """Handed to a backend's constructor.

    Attributes:
        state_dir: bmcd's state directory; a backend may keep files below it.
        options: the backend's own ``[backends.<name>]`` config table.
        database: the state database.
    """

    state_dir: Path
    options: Mapping[str, Any]
    database: Database
