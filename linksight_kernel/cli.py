"""The scientist's commands of the `linksight` command line, and the playground.

Each command connects like :class:`linksight_kernel.Client`: the hub URL
from ``--hub-url``, LINKSIGHT_HUB_URL or the config file, and the token from
LINKSIGHT_TOKEN or the config file (never from the command line, where
other users could read it in the process list).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import pandas as pd
import typer

from linksight.query import QueryError
from linksight_kernel.client import DEFAULT_WAIT_SECONDS, Client
from linksight_kernel.errors import (
    LinksightError,
    RequestNotReleasedError,
    WaitTimeoutError,
)
from linksight_kernel.requests import organisation_table

T = TypeVar("T")

HubUrl = Annotated[
    str | None,
    typer.Option(
        "--hub-url", help="The hub's URL (default: LINKSIGHT_HUB_URL or the config)."
    ),
]
Profile = Annotated[
    str | None, typer.Option("--profile", help="A profile of the config file.")
]
Collaboration = Annotated[
    str | None,
    typer.Option(
        "--collaboration",
        "-c",
        help="The collaboration (default: the config's, or your only one).",
    ),
]


# Exit codes of `query` and `result` besides 0 and the usage error 1.
NOT_RELEASED_EXIT = 3
STILL_RUNNING_EXIT = 4


def _positive_seconds(value: float) -> float:
    if value <= 0:
        raise typer.BadParameter(
            f"invalid timeout {value:g}: give a number of seconds above 0, "
            f"such as {DEFAULT_WAIT_SECONDS:g}"
        )
    return value


Timeout = Annotated[
    float,
    typer.Option(
        help="Seconds to wait for approval and computation.",
        callback=_positive_seconds,
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _client(hub_url: str | None, profile: str | None) -> Client:
    try:
        return Client(hub_url, profile=profile)
    except LinksightError as exc:
        raise _fail(str(exc)) from exc


def _print_frame(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        typer.echo(frame.to_string())


def collaborations(hub_url: HubUrl = None, profile: Profile = None) -> None:
    """List your organisation's collaborations."""
    with _client(hub_url, profile) as client:
        _print_frame(_run(client.collaborations))


def datasets(
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """List a collaboration's datasets and the stations that have them."""
    with _client(hub_url, profile) as client:
        _print_frame(_run(lambda: client.datasets(collaboration)))


def schema(
    dataset: Annotated[str, typer.Argument(help="The dataset to describe.")],
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Describe a dataset's columns: type, allowed uses, range or levels."""
    with _client(hub_url, profile) as client:
        _print_frame(_run(lambda: client.schema(dataset, collaboration)))


def query(
    text: Annotated[str, typer.Argument(help="The query, in quotes.")],
    collaboration: Collaboration = None,
    purpose: Annotated[
        str | None, typer.Option(help="Why you need it; the stewards read it.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the result, or only submit.")
    ] = True,
    timeout: Timeout = DEFAULT_WAIT_SECONDS,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Submit a query and print its result, or its request id with --no-wait.

    Exits 1 on an invalid query or a hub error, 2 on invalid options, 3 if
    the request ends without a released result (rejected, failed, or blocked
    by disclosure control), 4 if it is still waiting or running after
    --timeout seconds.
    """
    with _client(hub_url, profile) as client:
        request = _run(lambda: client.submit(text, collaboration, purpose))
        if not wait and not request.finished:
            typer.echo(f"submitted {request}")
            typer.echo(f"`linksight result {request.id}` waits for its result.")
            return
        _print_outcome(client, request.id, timeout)


def result(
    request_id: Annotated[int, typer.Argument(help="The request's number.")],
    timeout: Timeout = DEFAULT_WAIT_SECONDS,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Wait for a submitted request and print its result.

    Exits as `query` does: 3 without a released result, 4 if it is still
    waiting or running after --timeout seconds.
    """
    with _client(hub_url, profile) as client:
        _print_outcome(client, request_id, timeout)


def revoke(
    request_id: Annotated[int, typer.Argument(help="The request's number.")],
    reason: Annotated[
        str, typer.Option(help="Why you withdraw it; the stewards read it.")
    ] = "",
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Withdraw a request of yours that has not started running."""
    with _client(hub_url, profile) as client:
        typer.echo(str(_run(lambda: client.revoke(request_id, reason))))


def _print_outcome(client: Client, request_id: int, timeout: float) -> None:
    try:
        final = client.wait(request_id, timeout=timeout, progress="text")
        released = client.outcome(final)
    except WaitTimeoutError as exc:
        waiting = exc.request
        raise _fail(
            f"request {waiting.id} is still {waiting.state} after {timeout:g} s. "
            f"It goes on at the hub: `linksight result {waiting.id}` waits again, "
            f"`linksight revoke {waiting.id}` withdraws it if it has not started.",
            code=STILL_RUNNING_EXIT,
        ) from exc
    except RequestNotReleasedError as exc:
        if exc.result is not None:
            _print_frame(exc.result.checks)
        raise _fail(str(exc), code=NOT_RELEASED_EXIT) from exc
    except LinksightError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(repr(released))


def status(
    request_id: Annotated[
        int | None, typer.Argument(help="One request; all yours if left out.")
    ] = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Show a request's state, approvals and stations, or list your requests."""
    with _client(hub_url, profile) as client:
        if request_id is None:
            for request in _run(client.requests):
                typer.echo(f"{request}: {request.query}")
            return
        request = _run(lambda: client.request(request_id))
        typer.echo(str(request))
        _print_frame(organisation_table(request))


def budget(
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Show how many requests your query budget has left."""
    with _client(hub_url, profile) as client:
        body = _run(lambda: client.budget(collaboration))
        limit = "no limit" if body["limit"] is None else f"limit {body['limit']}"
        typer.echo(
            f"{body['collaboration']}: {body['used']} requests in the last "
            f"{body['period_days']} days, {limit}"
            + ("" if body["remaining"] is None else f", {body['remaining']} left")
        )


def playground(
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where to keep state and logs (default: a temporary dir)."),
    ] = None,
    port: Annotated[int, typer.Option(help="JupyterLab's port (0: any free).")] = 0,
    browser: Annotated[
        bool | None,
        typer.Option(
            help="Open a browser on JupyterLab (default: when run in a terminal)."
        ),
    ] = None,
    lab: Annotated[bool, typer.Option(help="Start JupyterLab.")] = True,
    auto_approve: Annotated[
        bool,
        typer.Option(help="Let demo stewards approve sam's requests after a delay."),
    ] = True,
    approve_delay: Annotated[
        float, typer.Option(help="Seconds a request of sam's waits for approval.")
    ] = 2.0,
    dashboard: Annotated[
        bool, typer.Option(help="Start the stewards' dashboard (Voila).")
    ] = True,
    dashboard_port: Annotated[
        int, typer.Option(help="The dashboard's port (0: any free).")
    ] = 0,
) -> None:
    """Start a hub, example stations, JupyterLab and the dashboard on 127.0.0.1.

    Three stations hold the lung data and the waiting lists, four more the
    heart study, with a Flower SuperLink for training; JupyterLab opens the
    example notebooks and the stewards' dashboard runs beside it.

    Ctrl-C stops every process it started. The state directory is deleted
    afterwards unless it was given with --state-dir, or a process failed or
    exited on its own, so that its log stays. A directory given with
    --state-dir must be new or empty, because each start sets up a new
    network. If a station exits, the playground warns and keeps serving
    without it. If the hub, JupyterLab, the SuperLink or the dashboard
    exits, it stops.
    """
    import shutil
    import signal
    import tempfile
    import time

    from linksight.network import NetworkError
    from linksight.playground import check_state_folder, start_playground

    keep = state_dir is not None
    if state_dir is not None:
        try:
            check_state_folder(state_dir)
        except NetworkError as exc:
            raise _fail(str(exc), code=2) from exc
    root = state_dir or Path(tempfile.mkdtemp(prefix="linksight-playground-"))
    root.mkdir(parents=True, exist_ok=True)
    # Stop in order on SIGTERM as on Ctrl-C, also when started in the
    # background, where a shell may have set SIGINT to be ignored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    typer.echo(f"starting the hub and the example stations; state and logs in {root}")
    running = None
    try:
        running = start_playground(root, auto_approve, approve_delay)
        typer.echo(f"hub: {running.network.hub_url}")
        typer.echo(f"client config: {running.config_path}")
        if auto_approve:
            typer.echo(
                f"demo stewards approve sam's requests after {approve_delay:g} s; "
                "kim's wait for: %linksight approve ID --as steward-a"
            )
        if lab:
            open_browser = sys.stdin.isatty() if browser is None else browser
            url = running.start_lab(port, open_browser)
            typer.echo(f"JupyterLab: {url}")
            typer.echo(
                "the Linksight panel (left sidebar) shows your requests, "
                "schemas and budget"
            )
        if dashboard:
            server = running.start_dashboard(dashboard_port)
            stewards = [station.steward for station in running.network.stations]
            typer.echo(
                f"stewards' dashboard: {server.url_for(stewards[0])} "
                f"(profile={' or '.join(stewards[1:])} for the other stewards)"
            )
        typer.echo("press Ctrl-C to stop every process", err=False)
        sys.stdout.flush()
        while True:
            if running.report_stopped_stations():
                # Keep the log files that the warning names.
                keep = True
            exited = running.exited()
            if exited is not None:
                keep = True
                raise _fail(f"{exited}; stopping the playground")
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("stopping")
    except (NetworkError, LinksightError) as exc:
        keep = True
        raise _fail(f"{exc}; logs are in {root / 'logs'}", code=2) from exc
    finally:
        if running is not None:
            running.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif state_dir is None:
            typer.echo(f"kept the state and logs in {root}")
        typer.echo("stopped")


def _run(call: Callable[[], T]) -> T:
    """Run a client call and turn user-facing errors into an exit with the message."""
    try:
        return call()
    except QueryError as exc:
        raise _fail(f"invalid query: {exc}") from exc
    except RequestNotReleasedError:
        raise
    except LinksightError as exc:
        raise _fail(str(exc)) from exc


def register(app: typer.Typer) -> None:
    """Add the scientist's commands and the playground to `app`."""
    for command in (
        collaborations,
        datasets,
        schema,
        query,
        result,
        revoke,
        status,
        budget,
        playground,
    ):
        app.command()(command)
