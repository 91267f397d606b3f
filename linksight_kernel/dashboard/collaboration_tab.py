"""The collaboration tab: members, stations and their health, dataset schemas."""

from __future__ import annotations

import html

import ipywidgets as widgets
import pandas as pd

from linksight_kernel.dashboard.panel import Panel, Session, frame_html
from linksight_kernel.dashboard.views import ONLINE_SECONDS, station_health


class CollaborationPanel(Panel):
    """The collaboration's members, their stations' health and the datasets."""

    title = "Collaboration"

    def __init__(self, session: Session):
        super().__init__(session)
        self.members = widgets.HTML()
        self.stations = widgets.HTML()
        self.stations.add_class("ls-stations")
        self.datasets = widgets.Accordion()
        self.datasets.add_class("ls-datasets")
        self._box = widgets.VBox(
            [
                self.button("Refresh", self._refresh, "ls-refresh-collaboration"),
                self.message,
                self.members,
                widgets.HTML("<h4>Stations</h4>"),
                self.stations,
                widgets.HTML("<h4>Datasets and their schemas</h4>"),
                self.datasets,
            ]
        )
        self._box.add_class("ls-tab-collaboration")

    @property
    def widget(self) -> widgets.Widget:
        return self._box

    def refresh(self) -> None:
        self.run(self._refresh)

    def _refresh(self) -> str:
        name = self.session.collaboration
        detail = self.session.get(f"/collaborations/{name}")
        members = "".join(
            f"<li>{html.escape(member)}</li>" for member in detail["members"]
        )
        self.members.value = (
            f"<h4>Members of {html.escape(name)}</h4><ul>{members}</ul>"
        )
        health = station_health(detail["stations"])
        online = int((health["status"] == "online").sum())
        offline = health.index[health["status"] == "offline"]
        warning = ""
        if len(offline):
            warning = (
                '<p class="ls-bad">Offline: '
                f"{html.escape(', '.join(offline))}; requests on their data "
                "wait until they are back.</p>"
            )
        self.stations.value = (
            f"<p>{online} of {len(health)} stations online (seen by the hub in "
            f"the last {ONLINE_SECONDS:g} s).</p>"
            + warning
            + frame_html(health, "no station of a member is registered")
        )
        schemas = self.session.client.schemas(name)
        children = []
        titles = []
        for dataset in detail["datasets"]:
            schema = schemas[dataset["name"]]
            table = self.session.client.schema(dataset["name"], name)
            intro = (
                f"<p>{html.escape(schema.description)}</p>"
                f"<p>Held by: {html.escape(', '.join(dataset['stations']))}</p>"
            )
            children.append(widgets.HTML(intro + frame_html(table)))
            titles.append(
                f"{dataset['name']}: {len(schema.columns)} columns, "
                f"{len(dataset['stations'])} stations"
            )
        self.datasets.children = children
        for index, title in enumerate(titles):
            self.datasets.set_title(index, title)
        if children:
            self.datasets.selected_index = 0
        if not children:
            self.datasets.children = [widgets.HTML("<i>no dataset registered</i>")]
            self.datasets.set_title(0, "no datasets")
        return f"read at {pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC"
