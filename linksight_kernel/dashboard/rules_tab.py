"""The rules tab: the rules in force, the open proposal, proposing, history."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets
import pandas as pd

from linksight.rules import CollaborationRules
from linksight_kernel.dashboard.panel import Panel, Session, frame_html
from linksight_kernel.dashboard.views import (
    parse_rule_changes,
    rule_changes,
    rule_description,
    rules_history,
)


class RulesPanel(Panel):
    """The collaboration's rules: read them, propose a change, vote on one."""

    title = "Rules"

    def __init__(self, session: Session):
        super().__init__(session)
        self.versions: list[dict[str, Any]] = []
        self.active = widgets.HTML()
        self.active.add_class("ls-active-rules")
        self.proposal = widgets.HTML()
        self.proposal.add_class("ls-proposal")
        self.accept = self.button(
            "Accept proposal", self._accept, "ls-accept", "success"
        )
        self.withdraw = self.button("Withdraw proposal", self._withdraw, "ls-withdraw")
        self.rule = widgets.Dropdown(
            options=list(CollaborationRules.model_fields), description="Rule"
        )
        self.rule.add_class("ls-rule")
        self.rule.observe(lambda _: self._describe_rule(), names="value")
        self.rule_help = widgets.HTML()
        self.value = widgets.Text(
            description="New value", placeholder="JSON, e.g. 15 or null"
        )
        self.value.add_class("ls-rule-value")
        self.reason = widgets.Text(
            description="Reason", placeholder="why the rule should change"
        )
        self.reason.add_class("ls-rule-reason")
        self.history = widgets.HTML()
        self.history.add_class("ls-history")
        self._box = widgets.VBox(
            [
                self.button("Refresh", self._refresh, "ls-refresh-rules"),
                self.message,
                widgets.HTML("<h4>Rules in force</h4>"),
                self.active,
                widgets.HTML("<h4>Open proposal</h4>"),
                self.proposal,
                widgets.HBox([self.accept, self.withdraw]),
                widgets.HTML(
                    "<h4>Propose a change</h4><p>It takes effect when a steward "
                    "of every member organisation has accepted it; proposing "
                    "counts as your organisation's acceptance.</p>"
                ),
                self.rule,
                self.rule_help,
                self.value,
                self.reason,
                self.button("Propose", self._propose, "ls-propose", "primary"),
                widgets.HTML("<h4>History</h4>"),
                self.history,
            ]
        )
        self._box.add_class("ls-tab-rules")

    @property
    def widget(self) -> widgets.Widget:
        return self._box

    def refresh(self) -> None:
        self.run(self._refresh)

    def _current(self) -> dict[str, Any]:
        for version in self.versions:
            if version["state"] == "active":
                return version
        return {"version": 0, "rules": {}}

    def _open(self) -> dict[str, Any] | None:
        return next((v for v in self.versions if v["state"] == "proposed"), None)

    def _describe_rule(self) -> None:
        rule = self.rule.value
        current = self._current()["rules"].get(rule)
        self.rule_help.value = (
            f"<p><i>{html.escape(rule_description(rule))}</i>; now "
            f"<code>{html.escape(json.dumps(current))}</code></p>"
        )

    def _refresh(self) -> str:
        self.versions = self.session.client.rules(self.session.collaboration)
        current = self._current()
        rows = [
            {
                "rule": rule,
                "value": json.dumps(value),
                "meaning": rule_description(rule),
            }
            for rule, value in sorted(current["rules"].items())
        ]
        self.active.value = f"<p>Version {current['version']}</p>" + frame_html(
            pd.DataFrame(rows).set_index("rule") if rows else pd.DataFrame()
        )
        proposal = self._open()
        if proposal is None:
            self.proposal.value = "<p><i>no open proposal</i></p>"
        else:
            changes = rule_changes(current["rules"], proposal["rules"])
            accepted = ", ".join(a["organisation"] for a in proposal["acceptances"])
            items = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in changes)
            self.proposal.value = (
                f"<p>Version {proposal['version']}, proposed by "
                f"{html.escape(proposal['proposed_by'])}: "
                f"<i>{html.escape(proposal['reason'])}</i></p><ul>{items}</ul>"
                f"<p>Accepted by: {html.escape(accepted or 'nobody')}<br>"
                f"Awaiting: {html.escape(', '.join(proposal['awaiting']))}</p>"
            )
        own = self.session.organisation
        self.accept.disabled = proposal is None or own not in proposal["awaiting"]
        self.withdraw.disabled = proposal is None
        self.history.value = frame_html(rules_history(self.versions))
        self._describe_rule()
        return f"read at {pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC"

    def _propose(self) -> str:
        if not self.reason.value.strip():
            raise ValueError("a proposal needs a reason: fill in Reason")
        if not self.value.value.strip():
            raise ValueError(
                f"no new value for {self.rule.value}: fill in New value, in JSON"
            )
        changes = parse_rule_changes([f"{self.rule.value}={self.value.value}"])
        version = self.session.client.propose_rules(
            changes, self.reason.value.strip(), self.session.collaboration
        )
        self.value.value = ""
        self.reason.value = ""
        self._refresh()
        if version["state"] == "active":
            return f"version {version['version']} proposed and already in force"
        return (
            f"version {version['version']} proposed; awaiting "
            f"{', '.join(version['awaiting'])}"
        )

    def _accept(self) -> str:
        proposal = self._open()
        if proposal is None:
            raise ValueError("there is no open proposal to accept; press Refresh")
        version = self.session.client.accept_rules(
            proposal["version"], self.session.collaboration
        )
        self._refresh()
        if version["state"] == "active":
            return f"accepted; version {version['version']} is now in force"
        return (
            f"accepted version {version['version']}; still awaiting "
            f"{', '.join(version['awaiting'])}"
        )

    def _withdraw(self) -> str:
        proposal = self._open()
        if proposal is None:
            raise ValueError("there is no open proposal to withdraw; press Refresh")
        name = self.session.collaboration
        self.session.post(
            f"/collaborations/{name}/rules/{proposal['version']}/withdraw"
        )
        self._refresh()
        return f"withdrew version {proposal['version']}"
