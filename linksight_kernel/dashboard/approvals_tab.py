"""The approval queue: requests in plain words, a preview, approve or reject."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import pandas as pd

from linksight.rules import CollaborationRules
from linksight.schema import DatasetSchema
from linksight_kernel.dashboard import plots
from linksight_kernel.dashboard.panel import Panel, Session
from linksight_kernel.dashboard.views import (
    budget_use,
    preview,
    preview_html,
    request_html,
    request_summary,
)
from linksight_kernel.requests import Request

AWAITING = "Awaiting my decision"
EVERY = "All requests"


class ApprovalsPanel(Panel):
    """The requests touching the steward's organisation, and the decisions."""

    title = "Approval queue"

    def __init__(self, session: Session):
        super().__init__(session)
        self.requests: list[Request] = []
        self.organisations: dict[int, str] = {}
        # Per collaboration: its detail from the hub and its dataset schemas.
        self._details: dict[str, dict[str, Any]] = {}
        self._schemas: dict[str, dict[str, DatasetSchema]] = {}
        self.scope = widgets.ToggleButtons(options=[AWAITING, EVERY], value=AWAITING)
        self.scope.add_class("ls-scope")
        self.scope.observe(lambda _: self._fill_list(), names="value")
        self.listing = widgets.Select(rows=8, layout=widgets.Layout(width="100%"))
        self.listing.add_class("ls-requests")
        self.listing.observe(lambda _: self._show_selected(), names="value")
        half = widgets.Layout(width="50%")
        self.detail = widgets.HTML(layout=half)
        self.detail.add_class("ls-request-detail")
        self.preview = widgets.HTML(layout=half)
        self.preview.add_class("ls-request-preview")
        self.reason = widgets.Textarea(
            placeholder="Reason (required to reject; the requester sees it)",
            layout=widgets.Layout(width="100%", height="60px"),
        )
        self.reason.add_class("ls-reason")
        self.approve = self.button("Approve", self._approve, "ls-approve", "success")
        self.reject = self.button("Reject", self._reject, "ls-reject", "danger")
        chart = widgets.Layout(width="500px")
        self.state_chart = widgets.Image(format="png", layout=chart)
        self.state_chart.add_class("ls-chart-states")
        self.budget_chart = widgets.Image(format="png", layout=chart)
        self.budget_chart.add_class("ls-chart-budget")
        self._box = widgets.VBox(
            [
                widgets.HBox(
                    [
                        self.button("Refresh", self._refresh, "ls-refresh-requests"),
                        self.scope,
                    ]
                ),
                self.message,
                self.listing,
                widgets.HBox([self.detail, self.preview]),
                self.reason,
                widgets.HBox([self.approve, self.reject]),
                widgets.HBox([self.state_chart, self.budget_chart]),
            ]
        )
        self._box.add_class("ls-tab-approvals")

    @property
    def widget(self) -> widgets.Widget:
        return self._box

    def refresh(self) -> None:
        self.run(self._refresh)

    def _refresh(self) -> str:
        bodies = self.session.get("/requests")
        self.requests = [Request.from_json(body) for body in bodies]
        self.organisations = {b["id"]: b["submitter_organisation"] for b in bodies}
        self._details.clear()
        self._schemas.clear()
        self._fill_list()
        self._draw_charts()
        waiting = len(self._awaiting())
        return (
            f"{waiting} request(s) await your decision; read at "
            f"{pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC"
        )

    def _awaiting(self) -> list[Request]:
        own = self.session.organisation
        return [
            request
            for request in self.requests
            if request.state == "awaiting_approval"
            and own in request.touched_organisations
            and own not in {a.organisation for a in request.approvals}
        ]

    def _fill_list(self) -> None:
        shown = self._awaiting() if self.scope.value == AWAITING else self.requests
        shown = sorted(shown, key=lambda request: -request.id)
        selected = self.listing.value
        own = self.session.organisation
        ids = [request.id for request in shown]
        # One message for the new options and the kept selection, so that the
        # page never shows the options with a selection the kernel then moves.
        with self.listing.hold_sync():
            self.listing.options = [
                (request_summary(request, own), request.id) for request in shown
            ]
            if selected in ids:
                self.listing.value = selected
            elif ids:
                self.listing.value = ids[0]
        self._show_selected()

    def _selected(self) -> Request | None:
        return next((r for r in self.requests if r.id == self.listing.value), None)

    def _detail(self, collaboration: str) -> dict[str, Any]:
        if collaboration not in self._details:
            self._details[collaboration] = self.session.get(
                f"/collaborations/{collaboration}"
            )
            self._schemas[collaboration] = self.session.client.schemas(collaboration)
        return self._details[collaboration]

    def _show_selected(self) -> None:
        request = self._selected()
        own = self.session.organisation
        if request is None:
            self.detail.value = "<p><i>no request to show</i></p>"
            self.preview.value = ""
            self.approve.disabled = self.reject.disabled = True
            return
        self.run(lambda: self._render(request))
        undecided = own not in {a.organisation for a in request.approvals}
        can_decide = (
            request.state == "awaiting_approval"
            and own in request.touched_organisations
            and undecided
        )
        self.approve.disabled = self.reject.disabled = not can_decide

    def _render(self, request: Request) -> None:
        detail = self._detail(request.collaboration)
        stations = {d["name"]: d["stations"] for d in detail["datasets"]}
        by_station = {s["name"]: s["organisation"] for s in detail["stations"]}
        found = preview(
            request,
            self._schemas[request.collaboration],
            CollaborationRules.model_validate(detail["rules"]),
            stations,
            self.requests,
            self.organisations.get(request.id, ""),
            by_station,
        )
        self.detail.value = request_html(request, found)
        self.preview.value = preview_html(found)

    def _draw_charts(self) -> None:
        self.state_chart.value = plots.requests_by_state(self.requests)
        name = self.session.collaboration
        rules = CollaborationRules.model_validate(self._detail(name)["rules"])
        latest: dict[str, Request] = {}
        for request in self.requests:
            if request.collaboration == name:
                latest[request.submitter] = request
        rows = []
        for scientist, request in sorted(latest.items()):
            used, limit = budget_use(request, self.requests, rules)
            rows.append((scientist, used, limit))
        self.budget_chart.value = plots.budget_use(rows)

    def _decided(self, verb: str, request: Request) -> str:
        # The request leaves the queue of undecided ones; list every request
        # so that the steward can follow it to its end.
        self._refresh()
        self.scope.value = EVERY
        self.listing.value = request.id
        return f"{verb} request {request.id}; it is now {request.describe()}"

    def _approve(self) -> str:
        request = self._selected()
        if request is None:
            raise ValueError("select a request first")
        decided = self.session.client.approve(request.id, self.reason.value.strip())
        self.reason.value = ""
        return self._decided("approved", decided)

    def _reject(self) -> str:
        request = self._selected()
        if request is None:
            raise ValueError("select a request first")
        reason = self.reason.value.strip()
        if not reason:
            raise ValueError(
                "a rejection needs a reason, which the requester sees: write it "
                "in the Reason box"
            )
        decided = self.session.client.reject(request.id, reason)
        self.reason.value = ""
        return self._decided("rejected", decided)
