"""The aiohttp application: routes, middleware and the services behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bmcd import redfish
from bmcd.core.auth import Authenticator
from bmcd.core.bootstrap import ensure_administrator
from bmcd.core.config import Config
from bmcd.core.lifecycle import Lifecycle
from bmcd.core.services import core_services
from bmcd.http import keys, pipeline
from bmcd.http.parser import accept_any_method
from bmcd.http.routing import RouteTable


def create_app(config: Config, lifecycle: Lifecycle | None = None) -> web.Application:
    """Build the application; its state opens when the app starts up."""
    accept_any_method()
    app = web.Application(
        client_max_size=config.max_body_bytes, middlewares=[pipeline.error_middleware]
    )
    keys.CONFIG.set(app, config)
    keys.LIFECYCLE.set(app, lifecycle or Lifecycle())
    routes = RouteTable()
    redfish.register_all(routes)
    keys.ROUTES.set(app, routes)
    pipeline.install(app)
    app.cleanup_ctx.append(_core_services)
    for context in redfish.cleanup_contexts():
        app.cleanup_ctx.append(context)
    return app


async def _core_services(app: web.Application) -> AsyncIterator[None]:
    """Open the core state for the app's life; make the first admin if needed."""
    config = keys.CONFIG.get(app)
    async with core_services(config) as core:
        await ensure_administrator(core.accounts, config.state_dir)
        keys.SETTINGS.set(app, core.settings)
        keys.SESSIONS.set(app, core.sessions)
        keys.ACCOUNTS.set(app, core.accounts)
        keys.AUTHENTICATOR.set(
            app,
            Authenticator(
                core.accounts,
                core.sessions,
                failure_delay=config.login_failure_delay,
                cache_seconds=config.credential_cache_seconds,
            ),
        )
        yield
