"""Typed names for what the aiohttp application holds.

aiohttp 3.9+ wants ``web.AppKey`` keys (and warns about strings); aiohttp 3.8,
Debian 12's, has no AppKey. :class:`Key` uses an AppKey where there is one
and a plain string otherwise, and keeps the value's type either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from aiohttp import web

if TYPE_CHECKING:
    from bmcd.core.accounts import AccountManager
    from bmcd.core.auth import Authenticator
    from bmcd.core.certificates import CertificateManager
    from bmcd.core.config import Config
    from bmcd.core.lifecycle import Lifecycle
    from bmcd.core.sessions import SessionManager
    from bmcd.core.settings import Settings
    from bmcd.http.connections import RequestDeadline
    from bmcd.http.routing import RouteTable
    from bmcd.http.tls import TLSContextHolder

T = TypeVar("T")


class Key(Generic[T]):
    """The name under which the application stores one typed value."""

    def __init__(self, name: str) -> None:
        self.name = f"bmcd.{name}"
        app_key = getattr(web, "AppKey", None)
        self._key: Any = app_key(self.name, object) if app_key else self.name

    def get(self, app: web.Application) -> T:
        """The value stored under this key."""
        return cast(T, app[self._key])

    def find(self, app: web.Application) -> T | None:
        """The value stored under this key, or None when nothing is."""
        return cast("T | None", app.get(self._key))

    def set(self, app: web.Application, value: T) -> None:
        """Store ``value`` under this key (before the app starts)."""
        app[self._key] = value

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


CONFIG: Key[Config] = Key("config")
SETTINGS: Key[Settings] = Key("settings")
ACCOUNTS: Key[AccountManager] = Key("accounts")
SESSIONS: Key[SessionManager] = Key("sessions")
AUTHENTICATOR: Key[Authenticator] = Key("authenticator")
ROUTES: Key[RouteTable] = Key("routes")
LIFECYCLE: Key[Lifecycle] = Key("lifecycle")
TLS: Key[TLSContextHolder] = Key("tls")
DEADLINE: Key[RequestDeadline] = Key("deadline")
CERTIFICATES: Key[CertificateManager] = Key("certificates")
