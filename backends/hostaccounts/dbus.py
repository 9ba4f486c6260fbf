"""A self-healing D-Bus connection for the account backends (dbus-fast).

Calls go out as plain messages rather than through introspected proxies: one
round trip each, and the same code on dbus-fast 1.84 (Debian 12) and 5.x.
When the bus or the service is gone, a call raises BackendUnavailableError
with the reason; the next call connects again, so bmcd rides out a restart
of the bus or of the account service without restarting itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from bmcd.contracts import BackendUnavailableError

_LOGGER = logging.getLogger(__name__)

PROPERTIES = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"

# Errors that mean "nobody is there to answer", not "the answer is no".
_ABSENT = frozenset(
    {
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.Timeout",
        "org.freedesktop.DBus.Error.TimedOut",
        "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.NoServer",
        "org.freedesktop.DBus.Error.Spawn.ChildExited",
        "org.freedesktop.DBus.Error.Spawn.ExecFailed",
        "org.freedesktop.DBus.Error.Spawn.ServiceNotFound",
    }
)


class DBusCallError(Exception):
    """The service answered a call with a D-Bus error."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


def unwrap(value: Any) -> Any:
    """Plain Python values out of dbus-fast Variants, recursively."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


class Connection:
    """One bus connection, opened on first use and again after it breaks."""

    def __init__(
        self, service: str, *, address: str | None = None, timeout: float = 10.0
    ) -> None:
        self.service = service
        self._address = address
        self._timeout = timeout
        self._bus: MessageBus | None = None
        self._lock = asyncio.Lock()
        self._healthy = True
        self._watcher: asyncio.Task[None] | None = None

    async def _connected(self) -> MessageBus:
        async with self._lock:
            bus = self._bus
            if bus is not None and bus.connected:
                return bus
            self._bus = None
            try:
                if self._address:
                    bus = MessageBus(bus_address=self._address)
                else:
                    # The system bus; DBUS_SYSTEM_BUS_ADDRESS overrides its path.
                    bus = MessageBus(bus_type=BusType.SYSTEM)
            except Exception as err:
                _close_leaked_socket(err)
                raise self._unavailable(
                    f"cannot connect to the D-Bus system bus ({err!r})"
                ) from err
            try:
                await asyncio.wait_for(bus.connect(), self._timeout)
            except Exception as err:
                self._drop(bus)
                raise self._unavailable(
                    f"cannot connect to the D-Bus system bus ({err!r})"
                ) from err
            self._bus = bus
            self._watcher = asyncio.create_task(self._watch(bus))
            return bus

    async def _watch(self, bus: MessageBus) -> None:
        """Notice a lost connection (and consume its error) at once."""
        # dbus-fast 1.84 leaves this method unannotated.
        wait: Callable[[], Awaitable[None]] = bus.wait_for_disconnect
        try:
            await wait()
        except Exception as err:
            _LOGGER.debug("D-Bus connection for %s lost: %r", self.service, err)
        # dbus-fast 1.84 leaves the socket of a lost connection open.
        self._drop(bus)
        release_stream(bus)

    def _unavailable(self, reason: str) -> BackendUnavailableError:
        """The error to raise; logged once per outage, not per request."""
        if self._healthy:
            self._healthy = False
            _LOGGER.error(
                "D-Bus service %s unavailable: %s; bmcd retries on the next request",
                self.service,
                reason,
            )
        return BackendUnavailableError(f"{self.service}: {reason}")

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            _LOGGER.info("D-Bus service %s is answering again", self.service)

    async def call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Sequence[Any] = (),
    ) -> list[Any]:
        """Call a method of the service; its reply body, unwrapped.

        Raises:
            DBusCallError: the service answered with an error.
            BackendUnavailableError: no bus, no service, or no answer in time.
        """
        bus = await self._connected()
        message = Message(
            destination=self.service,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
        try:
            reply = await asyncio.wait_for(bus.call(message), self._timeout)
        except TimeoutError:
            raise self._unavailable(
                f"no answer to {member} within {self._timeout} s"
            ) from None
        except Exception as err:
            # The connection broke under us: drop it, reconnect next time.
            self._drop(bus)
            raise self._unavailable(f"{member} failed: {err!r}") from err
        if reply is None:
            self._drop(bus)
            raise self._unavailable(f"no reply to {member}")
        if reply.message_type == MessageType.ERROR:
            name = reply.error_name or "org.freedesktop.DBus.Error.Failed"
            text = str(reply.body[0]) if reply.body else ""
            if name in _ABSENT:
                raise self._unavailable(f"{name.rsplit('.', 1)[-1]} ({text})")
            self._recovered()
            raise DBusCallError(name, text)
        self._recovered()
        return [unwrap(item) for item in reply.body]

    async def get_all(self, path: str, interface: str) -> dict[str, Any]:
        """Every property of ``interface`` on ``path``."""
        (props,) = await self.call(path, PROPERTIES, "GetAll", "s", [interface])
        return dict(props)

    async def set_property(
        self, path: str, interface: str, name: str, signature: str, value: Any
    ) -> None:
        """Set one property."""
        await self.call(
            path, PROPERTIES, "Set", "ssv", [interface, name, Variant(signature, value)]
        )

    async def managed_objects(self, path: str) -> Mapping[str, dict[str, Any]]:
        """GetManagedObjects of the ObjectManager at ``path``."""
        (objects,) = await self.call(path, OBJECT_MANAGER, "GetManagedObjects")
        return dict(objects)

    def _drop(self, bus: MessageBus) -> None:
        if self._bus is bus:
            self._bus = None
        try:
            bus.disconnect()
        except Exception as err:
            _LOGGER.debug("Disconnecting a broken bus: %r", err)

    async def close(self) -> None:
        """Disconnect."""
        async with self._lock:
            if self._bus is not None:
                self._drop(self._bus)
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            # It releases the socket once the bus has seen the disconnect;
            # wait_for cancels it if the bus never does.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher, self._timeout)


def release_stream(bus: MessageBus) -> None:
    """Close the file object a disconnected bus keeps on its socket.

    Until it is closed, the socket stays open (and Python warns when it is
    collected). TODO(dbus-fast without the fix of Bluetooth-Devices/dbus-fast
    #494: Debian 12's 1.84 and Debian 13's 2.44 leave it open): remove when
    bmcd no longer supports them.
    """
    stream = getattr(bus, "_stream", None)
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.close()


def _close_leaked_socket(err: BaseException) -> None:
    """Close the socket a failed MessageBus() left open.

    TODO(Debian's dbus-fast 1.84 only; 5.x closes it): remove when bmcd no
    longer supports it.
    """
    traceback = err.__traceback__
    while traceback is not None:
        candidate = traceback.tb_frame.f_locals.get("self")
        if isinstance(candidate, MessageBus):
            for name in ("_stream", "_sock"):
                handle = getattr(candidate, name, None)
                if handle is not None:
                    with contextlib.suppress(Exception):
                        handle.close()
            return
        traceback = traceback.tb_next
