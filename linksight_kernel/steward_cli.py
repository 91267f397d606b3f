"""The data steward's commands: `linksight requests ...` and `linksight audit ...`.

They connect like every client command (``--hub-url``, LINKSIGHT_HUB_URL or
the config file for the URL; LINKSIGHT_TOKEN or the config file for the
token) and need a steward's or admin's token.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from linksight_kernel.cli import HubUrl, Profile, _client, _fail, _print_frame, _run
from linksight_kernel.dashboard.views import audit_csv, filter_audit
from linksight_kernel.requests import REQUEST_STATES, organisation_table

requests_app = typer.Typer(help="List, inspect, approve and reject requests.")
audit_app = typer.Typer(help="Read, verify and export the audit trail.")
rules_app = typer.Typer(help="Show, propose, accept and withdraw collaboration rules.")


@requests_app.command("list")
def list_requests(
    state: Annotated[
        str | None, typer.Option(help=f"Only this state: {', '.join(REQUEST_STATES)}.")
    ] = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """List the requests you may see: your own, or those touching your organisation."""
    if state is not None and state not in REQUEST_STATES:
        raise _fail(
            f"unknown state {state!r}; use one of: {', '.join(REQUEST_STATES)}", 2
        )
    with _client(hub_url, profile) as client:
        requests = _run(lambda: client.requests(state))
    if not requests:
        typer.echo("no requests" + (f" in state {state}" if state else ""))
        return
    for request in requests:
        typer.echo(f"{request}: {request.query}")


@requests_app.command("show")
def show_request(
    request_id: Annotated[int, typer.Argument(help="The request.")],
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Show a request in plain words: who, what, which data, and each decision."""
    with _client(hub_url, profile) as client:
        request = _run(lambda: client.request(request_id))
    typer.echo(str(request))
    typer.echo(f"requested by: {request.submitter}")
    typer.echo(f"purpose: {request.purpose or '(none given)'}")
    typer.echo(f"query: {request.query}")
    _print_frame(organisation_table(request))


@requests_app.command("approve")
def approve_request(
    request_id: Annotated[int, typer.Argument(help="The request to approve.")],
    reason: Annotated[str, typer.Option(help="Why the request may run.")] = "",
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Approve a request for your organisation (steward; never your own)."""
    with _client(hub_url, profile) as client:
        request = _run(lambda: client.approve(request_id, reason))
    typer.echo(f"approved; {request}")


@requests_app.command("reject")
def reject_request(
    request_id: Annotated[int, typer.Argument(help="The request to reject.")],
    reason: Annotated[
        str, typer.Option(help="Why not; the requester sees this reason.")
    ],
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Reject a request for your organisation, with a reason the requester sees."""
    if not reason.strip():
        raise _fail("a rejection needs a reason: pass --reason TEXT", 2)
    with _client(hub_url, profile) as client:
        request = _run(lambda: client.reject(request_id, reason))
    typer.echo(f"rejected; {request}")


AuditRequest = Annotated[
    int | None, typer.Option("--request", help="Only records about this request.")
]
AuditUser = Annotated[str | None, typer.Option(help="Only this user's records.")]
AuditOrganisation = Annotated[
    str | None, typer.Option(help="Only this organisation's records.")
]
AuditEvent = Annotated[
    str | None, typer.Option(help="Only events starting with this, e.g. request.")
]
Since = Annotated[
    datetime | None, typer.Option(help="Only records at or after this UTC time.")
]
Until = Annotated[
    datetime | None, typer.Option(help="Only records before this UTC time.")
]


@audit_app.command("show")
def show_audit(
    request: AuditRequest = None,
    user: AuditUser = None,
    organisation: AuditOrganisation = None,
    event: AuditEvent = None,
    since: Since = None,
    until: Until = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Print the hub's audit records, oldest first, with optional filters."""
    with _client(hub_url, profile) as client:
        frame = _run(lambda: client.audit(request))
    frame = filter_audit(frame, user, organisation, event, since, until)
    if frame.empty:
        typer.echo("no audit records match")
        return
    shown = frame[["seq", "time", "event", "organisation", "user", "role", "outcome"]]
    _print_frame(shown.set_index("seq"))


@audit_app.command("export")
def export_audit(
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
    request: AuditRequest = None,
    user: AuditUser = None,
    organisation: AuditOrganisation = None,
    event: AuditEvent = None,
    since: Since = None,
    until: Until = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Write the hub's audit records to a CSV file, hashes included."""
    with _client(hub_url, profile) as client:
        frame = _run(lambda: client.audit(request))
    frame = filter_audit(frame, user, organisation, event, since, until)
    try:
        out.write_text(audit_csv(frame), encoding="utf-8")
    except OSError as exc:
        raise _fail(
            f"cannot write {out}: {exc.strerror}; check that its folder exists "
            "and that you may write there"
        ) from exc
    typer.echo(f"wrote {len(frame)} audit records to {out}")


@audit_app.command("verify")
def verify_audit(
    station_config: Annotated[
        list[Path] | None,
        typer.Option(
            "--station-config",
            help="Also verify this station's own chain and its copy of the "
            "checkpoints, under its own key (repeatable; run where the "
            "station's state directory is).",
        ),
    ] = None,
    max_unsigned: Annotated[
        int | None,
        typer.Option(
            "--max-unsigned",
            min=0,
            help="Also fail when more than this many records follow the newest "
            "co-signed one (0: every record must be co-signed).",
        ),
    ] = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Verify the hub's audit chain against the stations' signed checkpoints.

    The hub's records are checked here, as are the checkpoints the stations
    signed of them, so that an edited, deleted, reordered or truncated
    record, or a history the hub rewrote, is found. With --station-config,
    also each station's own chain. Exits 1 and names the record, the station
    and what is wrong if anything does not match. The records after the
    newest checkpoint (the unsigned tail) are counted; `linksight audit
    checkpoint` has the stations sign them.
    """
    from linksight.checkpoints import SignedCheckpoint
    from linksight_kernel.audit_verify import load_station_configs, verify_audit_trail
    from station.config import ConfigError

    try:
        stations = load_station_configs(station_config or [])
    except ConfigError as exc:
        raise _fail(str(exc), 2) from exc
    with _client(hub_url, profile) as client:
        # NOTE: the raw records are read here, not through Client.audit(),
        # because the DataFrame it returns changes the types that are hashed.
        records = _run(lambda: client._call("GET", "/audit"))
        checkpoints = _run(lambda: client._call("GET", "/audit/checkpoints"))
    verification = verify_audit_trail(
        records,
        [SignedCheckpoint.model_validate(c) for c in checkpoints],
        stations,
    )
    for line in verification.summaries:
        typer.echo(line)
    too_long = max_unsigned is not None and (
        verification.unsigned_records > max_unsigned
    )
    if verification.ok and not too_long:
        typer.echo("audit trail intact")
        return
    for finding in verification.findings:
        typer.echo("BROKEN " + finding.describe())
    if too_long:
        typer.echo(
            f"UNSIGNED {verification.unsigned_records} record(s) follow the newest "
            f"co-signed one, more than --max-unsigned {max_unsigned}; run "
            "`linksight audit checkpoint` and verify again"
        )
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def request_checkpoint(
    timeout: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds to wait for every station's signature (0: no wait)."
        ),
    ] = 60.0,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Have every station co-sign the hub's audit chain now.

    The hub writes the request into its chain, each station signs a
    checkpoint of that record or a later one at its next poll, and this
    command waits until every station that ever signed one has done so.
    A station whose own chain grew since its last checkpoint makes the hub
    append its new head after the request, so then one more request
    follows (at most three rounds). Exits 1 and names the stations still
    missing when the timeout passes.
    """
    import time

    deadline = time.monotonic() + timeout
    with _client(hub_url, profile) as client:
        for _ in range(CHECKPOINT_ROUNDS):
            head = _run(lambda: client._call("POST", "/audit/checkpoint-requests"))
            requested = int(head["seq"])
            typer.echo(f"checkpoint requested at hub record {requested}")
            newest, missing = _await_checkpoints(client, requested, deadline)
            if missing or not newest:
                break
            after = _run(lambda: client._call("GET", "/audit/head"))
            if int(after["seq"]) == requested:
                break
    if not newest:
        raise _fail(
            "no station has signed a checkpoint yet, so none can be awaited; "
            "start the stations and run the command again"
        )
    if missing:
        raise _fail(
            f"after {timeout:g} s, {', '.join(missing)} had not signed hub record "
            f"{requested}; check that these stations are running and reach the hub"
        )
    unsigned = int(after["seq"]) - requested
    typer.echo(
        f"hub record {requested} co-signed by {', '.join(sorted(newest))}; "
        f"{unsigned} record(s) follow it"
    )


# Requests sent by `linksight audit checkpoint` before it reports the tail left.
CHECKPOINT_ROUNDS = 3


def _await_checkpoints(
    client, requested: int, deadline: float
) -> tuple[dict[str, int], list[str]]:
    """Wait until every station signed hub record `requested` or the deadline passes.

    Returns each station's newest signed record and the stations still
    missing.
    """
    import time

    while True:
        checkpoints = _run(lambda: client._call("GET", "/audit/checkpoints"))
        newest: dict[str, int] = {}
        for signed in checkpoints:
            station = signed["checkpoint"]["station"]
            seq = int(signed["checkpoint"]["hub_seq"])
            newest[station] = max(newest.get(station, 0), seq)
        missing = sorted(s for s, seq in newest.items() if seq < requested)
        if not missing or time.monotonic() >= deadline:
            return newest, missing
        time.sleep(0.5)


Collaboration = Annotated[
    str | None,
    typer.Option("--collaboration", "-c", help="The collaboration (default: yours)."),
]


def _describe_version(version: dict) -> str:
    line = f"version {version['version']}: {version['state']}"
    if version["state"] == "proposed":
        line += f", awaiting {', '.join(version['awaiting']) or 'nobody'}"
    return line + f" (by {version['proposed_by']}: {version['reason']})"


@rules_app.command("show")
def show_rules(
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Show the rules in force, open proposals and the history of versions."""
    with _client(hub_url, profile) as client:
        versions = _run(lambda: client.rules(collaboration))
    for version in versions:
        typer.echo(_describe_version(version))
        if version["state"] in ("active", "proposed"):
            for rule, value in sorted(version["rules"].items()):
                typer.echo(f"    {rule} = {json.dumps(value)}")


@rules_app.command("propose")
def propose_rules(
    changes: Annotated[
        list[str], typer.Argument(help="RULE=VALUE pairs; VALUE in JSON, e.g. 15.")
    ],
    reason: Annotated[str, typer.Option(help="Why the rules should change.")],
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Propose new values for rules; every member's steward must accept them."""
    parsed = {}
    for change in changes:
        rule, separator, text = change.partition("=")
        if not separator or not rule:
            raise _fail(f"invalid change {change!r}: write RULE=VALUE", 2)
        try:
            parsed[rule] = json.loads(text)
        except json.JSONDecodeError:
            parsed[rule] = text
    with _client(hub_url, profile) as client:
        version = _run(lambda: client.propose_rules(parsed, reason, collaboration))
    typer.echo("proposed " + _describe_version(version))


@rules_app.command("accept")
def accept_rules(
    version: Annotated[int, typer.Argument(help="The proposed version to accept.")],
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Accept a proposed version of the rules for your organisation."""
    with _client(hub_url, profile) as client:
        accepted = _run(lambda: client.accept_rules(version, collaboration))
    typer.echo("accepted " + _describe_version(accepted))


@rules_app.command("withdraw")
def withdraw_rules(
    version: Annotated[int, typer.Argument(help="The proposed version to withdraw.")],
    collaboration: Collaboration = None,
    hub_url: HubUrl = None,
    profile: Profile = None,
) -> None:
    """Withdraw an open proposal of rules, so that another can be made."""
    with _client(hub_url, profile) as client:
        withdrawn = _run(lambda: client.withdraw_rules(version, collaboration))
    typer.echo("withdrew " + _describe_version(withdrawn))


def register(app: typer.Typer) -> None:
    """Add the `requests`, `rules` and `audit` command groups to `app`."""
    app.add_typer(requests_app, name="requests", help="Review requests (stewards).")
    # `linksight approve N` is kept as the short form of `requests approve N`.
    app.command("approve")(approve_request)
    app.add_typer(rules_app, name="rules", help="Collaboration rules (stewards).")
    app.add_typer(audit_app, name="audit", help="Read and verify the audit trail.")
