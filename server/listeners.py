"""Every listener of one fetchdeck, in one event loop over one engine.

The main listener (server.host:server.port, 39719 by default) serves the whole
MediaGo surface plus the Downie and SaveAny routes whose paths do not collide
with it. Each `[server.listen]` entry (or `--listen DIALECT=[HOST:]PORT`) adds a
listener that serves one dialect at the paths its real server uses, for
clients that hard-code their server's port (Downie's extension: 8000).

    group = await start_listeners(engine, config, error_log=path)
    for line in group.lines(): print(line)  # "mediago+downie+saveany on http://127.0.0.1:39719", ...
    for problem in group.problems: print(problem)  # a taken port: one line; the others still started
    ...
    await group.stop()

A listener that may not start at all (no token on a public address, `token = false`
off loopback) is a configuration error: `listener_refusals(config)` says why, before
anything is bound.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Config, Listener
from core.engine import Engine
from server.app import COMPAT_DIALECTS, SURFACES, build_services, create_app
from server.auth import is_loopback
from server.compat import CompatServices
from server.runner import ServerHandle, start_server
from server.sse import HEARTBEAT_SECONDS

MAIN = "main"


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    """One socket to serve: which surface, where, and whether it asks for the token."""

    surface: str
    host: str
    port: int
    token_required: bool

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        return "+".join(SURFACES[self.surface]) if self.surface == MAIN else self.surface


def plan_listeners(config: Config) -> list[ListenerPlan]:
    """The main listener first, then one per configured dialect, in config order."""
    server = config.server
    plans = [ListenerPlan(MAIN, server.host, server.port, True)]
    for listener in server.listen.values():
        plans.append(_plan(listener, server.host))
    return plans


def _plan(listener: Listener, main_host: str) -> ListenerPlan:
    return ListenerPlan(listener.dialect, listener.bind_host(main_host), listener.port, listener.token)


def refusal(host: str, token: str) -> str | None:
    """Why serving on host without a token is refused, or None if it is fine."""
    if token or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without a token: anyone who can reach it could download "
        "files onto this machine. Pass --token T, set FETCHDECK_SERVER_TOKEN, or set token in the "
        "[server] section of config.toml (or use --host 127.0.0.1)"
    )


def plan_refusal(plan: ListenerPlan, config: Config) -> str | None:
    """Why this listener may not start as configured, or None."""
    if not plan.token_required and not is_loopback(plan.host):
        return (f"the {plan.surface} listener on {plan.address} has token = false, which is allowed only on "
                "a loopback address (127.0.0.1, ::1, localhost): anyone who can reach it could download "
                "files onto this machine")
    why = refusal(plan.host, config.server.token if plan.token_required else "")
    if why:
        return why if plan.surface == MAIN else f"the {plan.surface} listener: {why}"
    if plan.surface in COMPAT_DIALECTS and not config.api.enable:
        return f"the {plan.surface} listener on {plan.address} needs the compat dialects ([api] enable = true)"
    return None


def listener_refusals(config: Config) -> list[str]:
    """Every listener that may not start as configured, one line each (empty: all fine)."""
    return [why for plan in plan_listeners(config) if (why := plan_refusal(plan, config))]


@dataclass(slots=True)
class ListenerGroup:
    """The listeners that started, and one line for each that could not."""

    services: CompatServices
    handles: dict[str, ServerHandle] = field(default_factory=dict)
    plans: dict[str, ListenerPlan] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def main(self) -> ServerHandle | None:
        return self.handles.get(MAIN)

    def lines(self) -> list[str]:
        """One line per running listener: what it serves, where, and whether it asks for the token."""
        out = []
        for surface, handle in self.handles.items():
            plan = self.plans[surface]
            note = "" if plan.token_required else " (no token)"
            out.append(f"{plan.label} on {handle.url}{note}")
        return out

    async def stop(self) -> None:
        for handle in list(self.handles.values()):
            with contextlib.suppress(Exception):
                await handle.stop()
        self.handles.clear()
        await self.services.stop()


async def start_listeners(
    engine: Engine, config: Config, *, error_log: Path | None = None, propagate_errors: bool = False,
    heartbeat: float = HEARTBEAT_SECONDS, themes_dir: Path | None = None,
) -> ListenerGroup:
    """Bind and serve every planned listener. A port that cannot be bound is one line in `problems`;
    the others still start (call `listener_refusals` first: refused listeners are not started)."""
    services = build_services(engine, config)
    group = ListenerGroup(services=services)
    for plan in plan_listeners(config):
        why = plan_refusal(plan, config)
        if why:
            group.problems.append(why)
            continue
        app = create_app(engine, config, heartbeat=heartbeat, surface=plan.surface,
                         token_required=plan.token_required, services=services, bind_host=plan.host,
                         themes_dir=themes_dir)
        try:
            handle = await start_server(app, plan.host, plan.port, error_log=error_log,
                                        propagate_errors=propagate_errors)
        except OSError as exc:
            group.problems.append(f"cannot listen on {plan.address} for {plan.label}: {exc.strerror or exc}")
            continue
        group.handles[plan.surface] = handle
        group.plans[plan.surface] = plan
    services.start()
    return group
