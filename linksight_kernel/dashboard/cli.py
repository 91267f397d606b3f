"""`linksight dashboard`: serve the stewards' dashboard with Voila on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from linksight_kernel.cli import HubUrl, Profile, _fail
from linksight_kernel.client import Client
from linksight_kernel.config import ENV_HUB_URL
from linksight_kernel.dashboard.server import (
    DEFAULT_CULL_IDLE_SECONDS,
    DEFAULT_CULL_INTERVAL_SECONDS,
    start_dashboard,
)
from linksight_kernel.errors import LinksightError

DEFAULT_PORT = 8866


def dashboard(
    port: Annotated[
        int, typer.Option(help="TCP port on 127.0.0.1 to serve the dashboard on.")
    ] = DEFAULT_PORT,
    station_config: Annotated[
        list[Path] | None,
        typer.Option(
            "--station-config",
            help="A station's config file, whose own audit chain Verify also "
            "checks (repeatable; only where that station's state directory is).",
        ),
    ] = None,
    cull_idle_seconds: Annotated[
        int,
        typer.Option(
            help="Stop a page's kernel after this many idle seconds with the "
            "page closed."
        ),
    ] = DEFAULT_CULL_IDLE_SECONDS,
    log_file: Annotated[
        Path | None,
        typer.Option(help="Voila's log file (default: in a temporary directory)."),
    ] = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Serve the stewards' dashboard with Voila on 127.0.0.1 and print its URL.

    It connects as the command line does, with a steward's token: a profile
    of the config file (--profile, or ?profile=NAME in the URL), or
    LINKSIGHT_HUB_URL and LINKSIGHT_TOKEN. Ctrl-C stops it.
    """
    for path in station_config or []:
        if not path.is_file():
            raise _fail(f"station config {path} does not exist", 2)
    try:
        with Client(hub_url, profile=profile) as client:
            me = client.me()
    except LinksightError as exc:
        raise _fail(str(exc)) from exc
    if not {"steward", "admin"} & set(me["roles"]):
        raise _fail(
            f"{me['name']} has role(s) {', '.join(me['roles'])}; the dashboard "
            "needs a steward's or admin's token: pass --profile STEWARD or set "
            "LINKSIGHT_TOKEN"
        )
    environment = dict(os.environ)
    if hub_url:
        environment[ENV_HUB_URL] = hub_url
    log_path = log_file or Path(tempfile.mkdtemp(prefix="linksight-dashboard-"))
    if log_file is None:
        log_path = log_path / "voila.log"
    # Stop in order on SIGTERM as on Ctrl-C, also when started in the
    # background, where a shell may have set SIGINT to be ignored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server = start_dashboard(
            port,
            log_path,
            environment=environment,
            profile=profile,
            station_configs=station_config,
            cull_idle_seconds=cull_idle_seconds,
            cull_interval_seconds=min(DEFAULT_CULL_INTERVAL_SECONDS, cull_idle_seconds),
        )
    except LinksightError as exc:
        raise _fail(str(exc)) from exc
    try:
        # Inside the try: a Ctrl-C right after the URL appears stops in order.
        typer.echo(f"Voila's log: {log_path}; press Ctrl-C to stop")
        typer.echo(f"stewards' dashboard, signed in as {me['name']}: {server.url}")
        sys.stdout.flush()
        while server.process.poll() is None:
            time.sleep(0.5)
        raise _fail(
            f"Voila exited with status {server.process.returncode}; see {log_path}"
        )
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    """Add `linksight dashboard` to `app`."""
    app.command()(dashboard)
