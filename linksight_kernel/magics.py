"""The ``%linksight`` line magic and the ``%%linksight`` query cell.

Load them with ``%load_ext linksight_kernel``. A mistake in a magic's use
raises ``UsageError`` with the fix. A query that does not parse raises
``UsageError`` with a caret under the mistake. A request that ends without
a released result raises, so that running a notebook stops there.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from linksight.query import QueryError
from linksight_kernel.client import DEFAULT_WAIT_SECONDS, Client
from linksight_kernel.errors import (
    ConfigError,
    HubError,
    HubUnreachableError,
    LinksightError,
)
from linksight_kernel.requests import (
    REQUEST_STATES,
    Request,
    organisation_table,
)

NOT_CONNECTED = "not connected: run %linksight connect URL first"


@magic_arguments(name="linksight connect")
@argument("url", nargs="?", help="The hub's URL; by default from the config.")
@argument("--profile", help="Connect as this profile of the config file.")
@argument("-c", "--collaboration", help="The default collaboration.")
@argument("--purpose", help="The purpose recorded with requests that state none.")
def _connect(line: str) -> None:
    """Connect to a hub; the token comes from LINKSIGHT_TOKEN or the config file."""


@magic_arguments(name="linksight collaborations")
def _collaborations(line: str) -> None:
    """List your organisation's collaborations."""


@magic_arguments(name="linksight datasets")
@argument("-c", "--collaboration", help="The collaboration to list.")
def _datasets(line: str) -> None:
    """List a collaboration's datasets and the stations that have them."""


@magic_arguments(name="linksight schema")
@argument("dataset", help="The dataset to describe.")
@argument("-c", "--collaboration", help="The collaboration of the dataset.")
def _schema(line: str) -> None:
    """Describe a dataset's columns: type, allowed uses, range or levels."""


@magic_arguments(name="linksight status")
@argument("request_id", nargs="?", type=int, help="One request; all if left out.")
def _status(line: str) -> None:
    """Show a request's state, approvals and stations, or list your requests."""


@magic_arguments(name="linksight requests")
@argument("--state", help="Only requests in this state, such as awaiting_approval.")
@argument("-c", "--collaboration", help="Only requests in this collaboration.")
def _requests(line: str) -> None:
    """List your requests, oldest first, with their state and what they wait for.

    For a steward, it lists the requests that touch their organisation.
    """


@magic_arguments(name="linksight revoke")
@argument("request_id", type=int, help="The request to withdraw.")
@argument("--reason", default="", help="Why you withdraw it; the stewards read it.")
def _revoke(line: str) -> None:
    """Withdraw a request of yours that has not started running."""


@magic_arguments(name="linksight budget")
@argument("-c", "--collaboration", help="The collaboration.")
def _budget(line: str) -> None:
    """Show how many requests your query budget has left."""


@magic_arguments(name="linksight approve")
@argument("request_id", type=int, help="The request to approve.")
@argument("--as", dest="profile", help="Approve as this profile of the config file.")
@argument("--reason", default="", help="Why the request may run.")
def _approve(line: str) -> None:
    """Approve a request for your organisation (steward; never your own)."""


@magic_arguments(name="linksight result")
@argument("request_id", type=int, help="The request.")
@argument("-o", "--output", help="Also store the result in this variable.")
@argument("--timeout", type=float, default=DEFAULT_WAIT_SECONDS, help="Seconds.")
def _result(line: str) -> None:
    """Wait for a request and show its result; raise if it was not released."""


@magic_arguments(name="%linksight")
@argument("-c", "--collaboration", help="The collaboration to query.")
@argument("-o", "--output", help="Store the result (or request) in this variable.")
@argument("--purpose", help="Why you need this query; the stewards read it.")
@argument("--plot", action="store_true", help="Draw the result with matplotlib.")
@argument(
    "--no-wait",
    action="store_true",
    help="Submit and return the request without waiting for its result.",
)
@argument(
    "--timeout",
    type=float,
    default=DEFAULT_WAIT_SECONDS,
    help="Seconds to wait for approval and computation.",
)
@argument("--no-progress", action="store_true", help="Do not show progress.")
def _cell(line: str) -> None:
    """Run the query in the cell body and show its result (%%linksight)."""


SUBCOMMANDS: dict[str, Callable[[str], None]] = {
    "connect": _connect,
    "collaborations": _collaborations,
    "datasets": _datasets,
    "schema": _schema,
    "status": _status,
    "requests": _requests,
    "revoke": _revoke,
    "budget": _budget,
    "approve": _approve,
    "result": _result,
}


def _help_text() -> str:
    sections = [
        "Query a Linksight network from IPython.",
        "",
        "%linksight COMMAND [options], where COMMAND is one of:",
        "",
    ]
    for function in SUBCOMMANDS.values():
        sections.append(function.__doc__ or "")
    sections += [
        "%%linksight [options] runs the query in the cell, as in:",
        "",
        "    %%linksight -o by_sex",
        "    SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex",
        "",
        _cell.__doc__ or "",
    ]
    return "\n".join(sections)


def _parse(function: Callable[[str], None], line: str) -> Any:
    try:
        return parse_argstring(function, line)
    except UsageError:
        raise
    except SystemExit as exc:  # argparse exits after printing --help
        raise UsageError(f"see %linksight? for the options ({exc})") from exc


@magics_class
class LinksightMagics(Magics):
    """The ``%linksight`` magics, holding the connection of this session."""

    def __init__(self, shell: Any):
        super().__init__(shell)
        self.client: Client | None = None

    def _require_client(self) -> Client:
        if self.client is None:
            raise UsageError(NOT_CONNECTED)
        return self.client

    @line_cell_magic
    def linksight(self, line: str, cell: str | None = None) -> Any:
        try:
            if cell is not None:
                return self._run_cell(line, cell)
            return self._run_line(line)
        except QueryError as exc:
            raise UsageError(f"invalid query: {exc}") from exc
        except (ConfigError, HubError, HubUnreachableError) as exc:
            raise UsageError(str(exc)) from exc
        except LinksightError as exc:
            if type(exc) is LinksightError:
                raise UsageError(str(exc)) from exc
            raise

    linksight.__doc__ = _help_text()

    def _run_line(self, line: str) -> Any:
        words = shlex.split(line)
        if not words:
            raise UsageError(
                "name a command: %linksight "
                + " | ".join(SUBCOMMANDS)
                + "; %linksight? shows the help"
            )
        command, rest = words[0], line.split(None, 1)[1] if len(words) > 1 else ""
        if command not in SUBCOMMANDS:
            close = difflib.get_close_matches(command, list(SUBCOMMANDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"unknown command {command!r}{hint}; commands: "
                + ", ".join(SUBCOMMANDS)
            )
        args = _parse(SUBCOMMANDS[command], rest)
        handler = getattr(self, f"_do_{command}")
        return handler(args)

    # Line commands

    def _do_connect(self, args: Any) -> None:
        client = Client(
            args.url,
            profile=args.profile,
            collaboration=args.collaboration,
            purpose=args.purpose,
        )
        try:
            me = client.me()
        except LinksightError:
            # The earlier connection, if any, stays in use.
            client.close()
            raise
        if self.client is not None:
            self.client.close()
        self.client = client
        names = client.collaborations()["collaboration"].tolist()
        print(
            f"connected to {client.hub_url} as {me['name']} of "
            f"{me['organisation']} ({', '.join(me['roles'])}); collaborations: "
            f"{', '.join(names) or 'none'}"
        )

    def _do_collaborations(self, args: Any) -> pd.DataFrame:
        return self._require_client().collaborations()

    def _do_datasets(self, args: Any) -> pd.DataFrame:
        return self._require_client().datasets(args.collaboration)

    def _do_schema(self, args: Any) -> pd.DataFrame:
        return self._require_client().schema(args.dataset, args.collaboration)

    def _do_status(self, args: Any) -> pd.DataFrame:
        client = self._require_client()
        if args.request_id is None:
            rows = [
                {
                    "request": r.id,
                    "collaboration": r.collaboration,
                    "state": r.state,
                    "query": r.query,
                }
                for r in client.requests()
            ]
            return pd.DataFrame(
                rows, columns=["request", "collaboration", "state", "query"]
            )
        request = client.request(args.request_id)
        print(request)
        return organisation_table(request)

    def _do_requests(self, args: Any) -> pd.DataFrame:
        client = self._require_client()
        if args.state is not None and args.state not in REQUEST_STATES:
            close = difflib.get_close_matches(args.state, REQUEST_STATES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"unknown state {args.state!r}{hint}; states: "
                + ", ".join(REQUEST_STATES)
            )
        if args.collaboration is not None:
            names = client.collaborations()["collaboration"].tolist()
            if args.collaboration not in names:
                raise UsageError(
                    f"collaboration {args.collaboration!r} is not one of yours; "
                    f"yours: {', '.join(names) or 'none'}"
                )
        rows = [
            {
                "request": request.id,
                "collaboration": request.collaboration,
                "submitter": request.submitter,
                "state": request.state,
                "progress": request.describe(),
                "submitted": request.created_at,
                "query": request.query,
            }
            for request in client.requests(args.state)
            if args.collaboration in (None, request.collaboration)
        ]
        columns = [
            "request",
            "collaboration",
            "submitter",
            "state",
            "progress",
            "submitted",
            "query",
        ]
        return pd.DataFrame(rows, columns=columns).set_index("request")

    def _do_revoke(self, args: Any) -> None:
        request = self._require_client().revoke(args.request_id, args.reason)
        print(f"revoked; {request}")

    def _do_budget(self, args: Any) -> None:
        budget = self._require_client().budget(args.collaboration)
        if budget["limit"] is None:
            print(
                f"no query budget in {budget['collaboration']}: you have used "
                f"{budget['used']} requests in the last {budget['period_days']} days"
            )
            return
        print(
            f"{budget['remaining']} of {budget['limit']} requests left in "
            f"{budget['collaboration']} for the last {budget['period_days']} days"
        )

    def _do_approve(self, args: Any) -> None:
        client = self._require_client()
        approver = client.as_profile(args.profile) if args.profile else client
        try:
            request = approver.approve(args.request_id, args.reason)
        finally:
            if approver is not client:
                approver.close()
        print(f"approved as {args.profile or 'yourself'}; {request}")

    def _do_result(self, args: Any) -> Any:
        client = self._require_client()
        request = client.wait(args.request_id, timeout=args.timeout)
        return self._finish(client, request, args.output, plot=False)

    # Query cell

    def _run_cell(self, line: str, cell: str) -> Any:
        args = _parse(_cell, line)
        client = self._require_client()
        query = cell.strip()
        if not query:
            raise UsageError(
                "the cell has no query; write one below %%linksight, as in "
                "SELECT count(*) FROM lung"
            )
        request = client.submit(query, args.collaboration, args.purpose)
        if args.no_wait:
            self._store(args.output, request)
            print(f"submitted {request}")
            return None
        progress = "none" if args.no_progress else "auto"
        request = client.wait(request.id, timeout=args.timeout, progress=progress)
        return self._finish(client, request, args.output, plot=args.plot)

    def _finish(
        self, client: Client, request: Request, output: str | None, plot: bool
    ) -> Any:
        try:
            result = client.outcome(request)
        except LinksightError as exc:
            # Keep a blocked result (its checks) where the user asked for it.
            self._store(output, getattr(exc, "result", None) or request)
            raise
        self._store(output, result)
        if not plot:
            return result
        import matplotlib.pyplot as plt
        from IPython.display import display

        display(result)
        figure = result.plot().figure
        display(figure)
        plt.close(figure)
        return None

    def _store(self, name: str | None, value: Any) -> None:
        if name is None:
            return
        if not name.isidentifier():
            raise UsageError(f"-o {name!r} is not a valid Python variable name")
        self.shell.user_ns[name] = value
