"""The audit tab: filter the hub's records, verify the chains, export CSV."""

from __future__ import annotations

import base64
import html
from datetime import datetime
from pathlib import Path

import ipywidgets as widgets
import pandas as pd

from linksight_kernel.dashboard import plots
from linksight_kernel.dashboard.panel import Panel, Session, frame_html
from linksight_kernel.dashboard.views import audit_csv, filter_audit

ANY = "(any)"

# Records shown in the table, newest first; the export has every match.
SHOWN_RECORDS = 200

SHOWN_COLUMNS = ["seq", "time", "event", "organisation", "user", "role", "outcome"]


def _parse_time(text: str, field: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{field} {text!r} is not a time; write it as 2026-01-31 or "
            "2026-01-31T14:00 (UTC)"
        ) from None


class AuditPanel(Panel):
    """The hub's audit trail with filters, verification and a CSV download."""

    title = "Audit trail"

    def __init__(self, session: Session):
        super().__init__(session)
        self.records = pd.DataFrame()
        self.user = widgets.Dropdown(options=[ANY], description="User")
        self.user.add_class("ls-audit-user")
        self.organisation = widgets.Dropdown(
            options=[ANY],
            description="Organisation",
            style={"description_width": "initial"},
        )
        self.organisation.add_class("ls-audit-organisation")
        self.event = widgets.Dropdown(options=[ANY], description="Event")
        self.event.add_class("ls-audit-event")
        self.request = widgets.Text(description="Request", placeholder="id")
        self.request.add_class("ls-audit-request")
        self.since = widgets.Text(description="Since", placeholder="2026-01-31 (UTC)")
        self.since.add_class("ls-audit-since")
        self.until = widgets.Text(description="Until", placeholder="2026-02-01 (UTC)")
        self.until.add_class("ls-audit-until")
        self.table = widgets.HTML()
        self.table.add_class("ls-audit-table")
        self.verification = widgets.HTML()
        self.verification.add_class("ls-verification")
        self.download = widgets.HTML()
        self.download.add_class("ls-download")
        self.chart = widgets.Image(format="png", layout=widgets.Layout(width="540px"))
        self.chart.add_class("ls-chart-audit")
        self._box = widgets.VBox(
            [
                widgets.HBox(
                    [
                        self.button("Refresh", self._refresh, "ls-refresh-audit"),
                        self.button("Verify", self._verify, "ls-verify", "warning"),
                        self.button("Export CSV", self._export, "ls-export"),
                    ]
                ),
                self.message,
                self.verification,
                self.download,
                widgets.HBox([self.user, self.organisation, self.request]),
                widgets.HBox([self.event, self.since, self.until]),
                self.button("Apply filters", self._show, "ls-apply-filters"),
                self.chart,
                self.table,
            ]
        )
        self._box.add_class("ls-tab-audit")

    @property
    def widget(self) -> widgets.Widget:
        return self._box

    def refresh(self) -> None:
        self.run(self._refresh)

    def _refresh(self) -> str:
        self.records = self.session.client.audit()
        dropdowns = (
            (self.user, "user"),
            (self.organisation, "organisation"),
            (self.event, "event"),
        )
        for dropdown, column in dropdowns:
            chosen = dropdown.value
            dropdown.options = [ANY, *sorted(set(self.records[column]) - {""})]
            dropdown.value = chosen if chosen in dropdown.options else ANY
        return self._show()

    def _filtered(self) -> pd.DataFrame:
        text = self.request.value.strip()
        if text and not text.isdigit():
            raise ValueError(f"request {text!r} is not a request id; write a number")
        return filter_audit(
            self.records,
            user=None if self.user.value == ANY else self.user.value,
            organisation=(
                None if self.organisation.value == ANY else self.organisation.value
            ),
            event=None if self.event.value == ANY else self.event.value,
            request_id=int(text) if text else None,
            since=_parse_time(self.since.value, "since"),
            until=_parse_time(self.until.value, "until"),
        )

    def _show(self) -> str:
        frame = self._filtered()
        shown = frame[SHOWN_COLUMNS].iloc[::-1].head(SHOWN_RECORDS).copy()
        times = pd.to_datetime(shown["time"], utc=True)
        shown["time"] = times.dt.strftime("%Y-%m-%d %H:%M:%S")
        self.table.value = frame_html(shown, "no audit records match")
        self.chart.value = plots.audit_activity(frame)
        return f"{len(frame)} of {len(self.records)} records match" + (
            f"; the newest {SHOWN_RECORDS} are shown"
            if len(frame) > SHOWN_RECORDS
            else ""
        )

    def _verify(self) -> str:
        from linksight.checkpoints import SignedCheckpoint
        from linksight_kernel.audit_verify import (
            load_station_configs,
            verify_audit_trail,
        )
        from station.config import ConfigError

        try:
            stations = load_station_configs(
                [Path(path) for path in self.session.station_configs]
            )
        except ConfigError as exc:
            raise ValueError(f"cannot verify the stations' chains: {exc}") from exc
        # The raw records, as the hub hashed them; the verification runs
        # here, because a hub that rewrote its history would call it intact.
        records = self.session.get("/audit")
        checkpoints = [
            SignedCheckpoint.model_validate(body)
            for body in self.session.get("/audit/checkpoints")
        ]
        verification = verify_audit_trail(records, checkpoints, stations)
        lines = [
            f'<li><span class="{"ls-bad" if "BROKEN" in line else "ls-ok"}">'
            f"{html.escape(line)}</span></li>"
            for line in verification.summaries
        ]
        lines += [
            f'<li><span class="ls-bad">BROKEN {html.escape(finding.describe())}'
            "</span></li>"
            for finding in verification.findings
        ]
        if not stations:
            lines.append(
                "<li>The stations' own chains were not read: start the dashboard "
                "with --station-config where the stations run, or run "
                "<code>linksight audit verify --station-config station.toml</code>"
                " there.</li>"
            )
        checked = f"{pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC"
        self.verification.value = (
            f"<p>Verified at {checked}:</p><ul>{''.join(lines)}</ul>"
        )
        if verification.ok:
            return "audit trail intact"
        return f"audit trail BROKEN: {len(verification.findings)} finding(s)"

    def _export(self) -> str:
        frame = self._filtered()
        text = audit_csv(frame)
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        name = f"linksight-audit-{pd.Timestamp.now(tz='UTC'):%Y%m%d-%H%M%S}.csv"
        self.download.value = (
            f'<a class="ls-download-link" download="{name}" '
            f'href="data:text/csv;base64,{encoded}">Download {name} '
            f"({len(frame)} records)</a>"
        )
        return f"{len(frame)} records ready to download as {name}"
