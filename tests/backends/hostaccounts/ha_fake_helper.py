"""A stand-in for bmcd's root helper, for tests without host users.

It speaks the helper's socket protocol but keeps passwords in a pam_pwdfile
file and expiry in the OpenBMC stand-in, so the backend's whole path (hash,
socket, PAM) runs without root.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bmcd_backends.hostaccounts import cryptpw


class FakeHelper:
    """An asyncio Unix socket server with the helper's requests."""

    def __init__(self, socket: Path, pwdfile: Path, manager: Any = None) -> None:
        self.socket = socket
        self.pwdfile = pwdfile
        self.manager = manager
        self.requests: list[dict[str, Any]] = []
        self.refuse_passwords: set[str] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen."""
        self._server = await asyncio.start_unix_server(self._serve, str(self.socket))

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def passwords(self) -> dict[str, str]:
        """User -> crypt hash, from the pwdfile."""
        lines = self.pwdfile.read_text().splitlines() if self.pwdfile.exists() else []
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def _write(self, entries: dict[str, str]) -> None:
        self.pwdfile.write_text("".join(f"{u}:{h}\n" for u, h in entries.items()))

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        op, user = request.get("op"), request.get("user")
        users = self.manager.users if self.manager is not None else {}
        if self.manager is not None and user not in users:
            return {"ok": False, "error": "not_found", "message": str(user)}
        entries = self.passwords()
        if op == "change_password":
            if request["password"] in self.refuse_passwords:
                return {"ok": False, "error": "rejected", "message": "too simple"}
            entries[user] = cryptpw.hash_password(request["password"])
            self._write(entries)
            if self.manager is not None:
                users[user].expired = False
        elif op == "set_password_hash":
            entries[user] = request["hash"]
            self._write(entries)
        elif op == "set_password_expired":
            users[user].expired = request["expired"]
        elif op in (
            "reset_failures",
            "add_to_group",
            "remove_from_group",
            "set_enabled",
        ):
            pass
        else:
            return {"ok": False, "error": "invalid", "message": f"op {op}"}
        return {"ok": True}

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        line = await reader.readline()
        reply = await asyncio.to_thread(self._handle, json.loads(line))
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()
