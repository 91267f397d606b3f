"""The `linksight` command line: hub, station and demo."""

from __future__ import annotations

import typer

from governance.cli import app as hub_app
from linksight.ca_cli import app as ca_app
from linksight_kernel.cli import register as register_client_commands
from linksight_kernel.dashboard.cli import register as register_dashboard_command
from linksight_kernel.steward_cli import register as register_steward_commands
from station.cli import app as station_app

app = typer.Typer(
    help="Linksight: federated queries over data that stays at each organisation.",
    no_args_is_help=True,
)
app.add_typer(hub_app, name="hub", help="Run and set up the governance hub.")
app.add_typer(station_app, name="station", help="Run a data station.")
app.add_typer(
    ca_app, name="ca", help="Issue certificates for MPC links and the hub's HTTPS."
)
register_client_commands(app)
register_steward_commands(app)
register_dashboard_command(app)


@app.command()
def demo(
    json_output: bool = typer.Option(
        False, "--json", help="Print the results as JSON instead of tables."
    ),
    keep: bool = typer.Option(
        False, help="Keep the demo's state directory instead of deleting it."
    ),
) -> None:
    """Run the example analyses on the NCCTG lung data with a hub and three stations.

    Starts every process on 127.0.0.1, runs each query under MPC, prints the
    federated result beside pandas on the pooled data, and exits non-zero if
    any released value differs.
    """
    from linksight.demo import run_demo

    raise typer.Exit(run_demo(json_output=json_output, keep=keep))
