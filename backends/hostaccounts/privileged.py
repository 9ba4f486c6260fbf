"""How the backends reach the root helper, or do its work when bmcd is root."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Protocol

from bmcd.contracts import (
    AccountNotFoundError,
    BackendUnavailableError,
    PasswordRejectedError,
)

from .helper import (
    MAX_REQUEST,
    Operations,
    RequestError,
)

_LOGGER = logging.getLogger(__name__)


class Privileged(Protocol):
    """Sends one of the helper's requests (see ``helper.py`` for the list)."""

    async def request(self, op: str, **fields: object) -> None:
        """Carry out ``op``; raise a contract error if it fails."""


def _raise(code: str, message: str, op: str) -> None:
    if code == "not_found":
        raise AccountNotFoundError(message)
    if code == "rejected":
        raise PasswordRejectedError(message)
    raise BackendUnavailableError(f"root helper refused {op} ({code}): {message}")


class HelperClient:
    """Talks to the root helper over its Unix socket; one request a connection."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    async def request(self, op: str, **fields: object) -> None:
        """Send ``op`` and wait for the helper's answer."""
        try:
            reply = await asyncio.wait_for(self._exchange(op, fields), self.timeout)
        except (TimeoutError, OSError, ValueError) as err:
            raise BackendUnavailableError(
                f"bmcd's root helper at {self.path} is not answering ({err!r}); "
                "is bmcd-helper running?"
            ) from err
        if reply.get("ok") is True:
            return
        _raise(str(reply.get("error")), str(reply.get("message")), op)

    async def _exchange(self, op: str, fields: dict[str, object]) -> dict[str, object]:
        reader, writer = await asyncio.open_unix_connection(
            str(self.path), limit=MAX_REQUEST
        )
        try:
            writer.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ValueError("reply is not a JSON object")
        return reply


class InProcess:
    """Does the helper's work in bmcd's own process: only when bmcd is root."""

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    async def request(self, op: str, **fields: object) -> None:
        """Validate and run ``op`` in a thread, as the helper would."""
        try:
            await asyncio.to_thread(self._operations.handle, {"op": op, **fields})
        except RequestError as err:
            _raise(err.code, str(err), op)
