"""The dashboard as a whole: sign-in, the collaboration chooser and the tabs."""

from __future__ import annotations

import html
import os
from urllib.parse import parse_qs

import ipywidgets as widgets

from linksight_kernel.client import Client
from linksight_kernel.dashboard.approvals_tab import ApprovalsPanel
from linksight_kernel.dashboard.audit_tab import AuditPanel
from linksight_kernel.dashboard.collaboration_tab import CollaborationPanel
from linksight_kernel.dashboard.panel import TABLE_STYLE, Panel, Session
from linksight_kernel.dashboard.rules_tab import RulesPanel
from linksight_kernel.dashboard.server import ENV_PROFILE, ENV_STATION_CONFIGS
from linksight_kernel.errors import LinksightError

STEWARD_ROLES = {"steward", "admin"}


def page_profile() -> str | None:
    """Return the ``profile`` parameter of the Voila page's URL, if any.

    Voila passes the page's query string to the kernel as QUERY_STRING.
    """
    values = parse_qs(os.environ.get("QUERY_STRING", "")).get("profile")
    return values[0] if values else None


class Dashboard:
    """The stewards' dashboard for one signed-in steward.

    Parameters
    ----------
    client
        A client with a steward's (or admin's) token.
    station_configs
        Station config files whose own audit chains Verify also checks.
    """

    def __init__(self, client: Client, station_configs: list[str] | None = None):
        me = client.me()
        roles = list(me["roles"])
        if not STEWARD_ROLES & set(roles):
            raise LinksightError(
                f"{me['name']} has role(s) {', '.join(roles) or 'none'}; the "
                "stewards' dashboard needs a steward's or admin's token: open it "
                "with ?profile=STEWARD or set LINKSIGHT_TOKEN to a steward's token"
            )
        collaborations = [c["name"] for c in client._call("GET", "/collaborations")]
        if not collaborations:
            raise LinksightError(
                f"{me['organisation']} is a member of no collaboration; ask the "
                "hub admin to add it to one"
            )
        chosen = client.collaboration
        self.session = Session(
            client=client,
            user=me["name"],
            organisation=me["organisation"],
            roles=roles,
            collaboration=chosen if chosen in collaborations else collaborations[0],
            station_configs=list(station_configs or []),
        )
        self.panels: list[Panel] = [
            CollaborationPanel(self.session),
            RulesPanel(self.session),
            ApprovalsPanel(self.session),
            AuditPanel(self.session),
        ]
        self.chooser = widgets.Dropdown(
            options=collaborations,
            value=self.session.collaboration,
            description="Collaboration",
            style={"description_width": "initial"},
        )
        self.chooser.add_class("ls-collaboration")
        self.chooser.observe(lambda change: self._choose(change["new"]), names="value")
        self.tabs = widgets.Tab(
            children=[panel.widget for panel in self.panels],
            titles=[panel.title for panel in self.panels],
        )
        signed_in = (
            f"<b>{html.escape(self.session.user)}</b> "
            f"({html.escape(self.session.organisation)}, "
            f"{html.escape(', '.join(roles))}) on {html.escape(client.hub_url)}"
        )
        self.widget = widgets.VBox(
            [
                widgets.HTML(TABLE_STYLE + "<h3>Linksight stewards' dashboard</h3>"),
                widgets.HTML(f"Signed in as {signed_in}"),
                self.chooser,
                self.tabs,
            ]
        )
        self.refresh()

    def _choose(self, collaboration: str) -> None:
        self.session.collaboration = collaboration
        self.refresh()

    def refresh(self) -> None:
        """Read everything again from the hub."""
        for panel in self.panels:
            panel.refresh()


def steward_dashboard(
    profile: str | None = None, station_configs: list[str] | None = None
) -> widgets.Widget:
    """Return the stewards' dashboard, or a message saying why it cannot open.

    The profile is `profile`, else the page's ``?profile=``, else
    LINKSIGHT_DASHBOARD_PROFILE; without one, the connection is that of the
    command line (LINKSIGHT_HUB_URL, LINKSIGHT_TOKEN, the config file).
    Station configs default to LINKSIGHT_STATION_CONFIGS.
    """
    profile = profile or page_profile() or os.environ.get(ENV_PROFILE) or None
    if station_configs is None:
        listed = os.environ.get(ENV_STATION_CONFIGS, "")
        station_configs = [path for path in listed.split(os.pathsep) if path]
    try:
        client = Client(profile=profile)
        return Dashboard(client, station_configs).widget
    except LinksightError as exc:
        message = widgets.HTML(
            f"<h3>Linksight stewards' dashboard</h3><p><b>Cannot open:</b> "
            f"{html.escape(str(exc))}</p>"
        )
        message.add_class("ls-error")
        return message
