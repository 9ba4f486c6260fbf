"""How parts of bmcd ask the daemon to stop or restart itself."""

from __future__ import annotations

import asyncio
import enum
import logging

_LOGGER = logging.getLogger(__name__)


class Ending(enum.Enum):
    """Why the daemon's main loop ends."""

    STOP = "stop"
    RESTART = "restart"


class Lifecycle:
    """A one-shot request to end the daemon, with the reason."""

    def __init__(self) -> None:
        self._ending: asyncio.Future[Ending] | None = None

    def _future(self) -> asyncio.Future[Ending]:
        if self._ending is None:
            self._ending = asyncio.get_running_loop().create_future()
        return self._ending

    def request(self, ending: Ending, reason: str) -> None:
        """Ask the daemon to stop or restart; the first request wins."""
        future = self._future()
        if not future.done():
            _LOGGER.info("bmcd will %s: %s", ending.value, reason)
            future.set_result(ending)

    async def wait(self) -> Ending:
        """Wait until something asks the daemon to end."""
        return await self._future()
