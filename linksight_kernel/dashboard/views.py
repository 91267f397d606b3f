"""Text and tables of the stewards' dashboard, computed from the hub's responses.

Nothing here draws a widget or calls the hub, so each function can be
tested on plain data: a request in plain words, the preview of what it
would reveal, station health, rule differences and audit filters.
"""

from __future__ import annotations

import difflib
import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import comb
from typing import Any

import pandas as pd

from linksight.query import QueryError, QuerySpec, parse_query
from linksight.rules import CollaborationRules
from linksight.schema import DatasetSchema
from linksight_kernel.requests import Request

# Stations re-register with the hub every 30 s (REGISTER_SECONDS in
# station/daemon.py); a station not seen for three periods counts as offline.
ONLINE_SECONDS = 90.0

# How many earlier requests the preview lists as similar, most similar first.
SIMILAR_LIMIT = 5

# Requests whose query text matches at least this closely (difflib's ratio,
# 0 to 1) count as similar even on another dataset or from another scientist.
SIMILAR_RATIO = 0.75

# Names of the model queries, by their kind.
MODEL_NAMES = {"ols": "linear regression", "logit": "logistic regression"}
SURVIVAL_NAMES = {
    "km": "Kaplan-Meier survival curves",
    "logrank": "a log-rank test",
}

# Characters of a request's purpose shown in the list of requests.
PURPOSE_SHOWN = 60

_USE_WORDS = {
    "output": "statistic",
    "group_by": "group by",
    "filter": "filter",
    "link": "identifier to compare lists",
    "covariate": "model term",
    "factor": "model factor",
}


def _use_words(use: str) -> str:
    return _USE_WORDS.get(use, use.replace("_", " "))


def parse_rule_changes(pairs: list[str]) -> dict[str, Any]:
    """Parse ``RULE=VALUE`` pairs into a change of rules; VALUE is JSON or text.

    Raises
    ------
    ValueError
        If a pair has no ``=`` or no rule name.
    """
    changes: dict[str, Any] = {}
    for pair in pairs:
        rule, separator, text = pair.partition("=")
        rule = rule.strip()
        if not separator or not rule:
            raise ValueError(f"invalid change {pair!r}: write RULE=VALUE")
        try:
            changes[rule] = json.loads(text)
        except json.JSONDecodeError:
            changes[rule] = text.strip()
    return changes


# Meanings of the rules whose fields carry no description.
RULE_MEANINGS = {
    "allowed_analyses": "the analyses scientists may request",
    "requires_approval": "whether every request waits for the stewards; "
    "false lets requests that pass the rules run at once",
}


def rule_description(rule: str) -> str:
    """Return the meaning of a collaboration rule, or its name in words."""
    field = CollaborationRules.model_fields[rule]
    return field.description or RULE_MEANINGS.get(rule, rule.replace("_", " "))


def rule_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return ``rule: old -> new`` for each rule whose value differs."""
    lines = []
    for rule in sorted(set(old) | set(new)):
        if old.get(rule) != new.get(rule):
            before = json.dumps(old.get(rule))
            after = json.dumps(new.get(rule))
            lines.append(f"{rule}: {before} -> {after}")
    return lines


def rules_history(versions: list[dict[str, Any]]) -> pd.DataFrame:
    """Return one row per rule version, newest first, with what it changed.

    A proposal starts from the rules in force when it was made: those of
    the newest earlier version that was ever active, because only one
    proposal is open at a time.
    """
    rows = []
    adopted: dict[str, Any] | None = None
    for version in sorted(versions, key=lambda v: v["version"]):
        if adopted is None:
            changes = "rules at creation"
        else:
            changes = "; ".join(rule_changes(adopted, version["rules"]))
        rows.append(
            {
                "version": version["version"],
                "state": version["state"],
                "changes": changes,
                "proposed by": version["proposed_by"],
                "reason": version["reason"],
                "accepted by": ", ".join(
                    a["organisation"] for a in version["acceptances"]
                ),
                "awaiting": ", ".join(version["awaiting"]),
                "activated": _short_time(version["activated_at"]),
            }
        )
        if version["state"] in ("active", "superseded"):
            adopted = version["rules"]
    if not rows:
        return pd.DataFrame(rows)
    return pd.DataFrame(rows).iloc[::-1].set_index("version")


def station_health(
    stations: list[dict[str, Any]], now: datetime | None = None
) -> pd.DataFrame:
    """Return each station's health: online, last seen, how long ago, version.

    `stations` are the entries of ``GET /collaborations/{name}``. A station
    that has never registered is offline with no last-seen time.
    """
    now = now or datetime.now(UTC)
    rows = []
    for station in stations:
        seen = station.get("last_seen")
        seen_at = datetime.fromisoformat(seen) if seen else None
        age = (now - seen_at).total_seconds() if seen_at else None
        rows.append(
            {
                "station": station["name"],
                "organisation": station["organisation"],
                "status": (
                    "online" if age is not None and age <= ONLINE_SECONDS else "offline"
                ),
                "last seen": _short_time(seen),
                "seen ago": "never" if age is None else _ago(age),
                "version": station.get("version") or "unknown",
            }
        )
    columns = ["station", "organisation", "status", "last seen", "seen ago", "version"]
    return pd.DataFrame(rows, columns=columns).set_index("station")


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _short_time(value: str | datetime | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_analysis(spec: QuerySpec) -> str:
    """Return what a parsed query computes, in words."""
    training = getattr(spec, "training", None)
    if training is not None and spec.model is not None:
        text = (
            f"federated training of a {training.family} model "
            f"{spec.model.formula}, {training.rounds} rounds"
        )
        if getattr(training, "dp_epsilon", None) is not None:
            text += (
                f", under differential privacy (epsilon {training.dp_epsilon:g}, "
                f"delta {training.dp_delta:g})"
            )
        return text
    if spec.model is not None:
        name = MODEL_NAMES.get(spec.kind, f"{spec.kind} model")
        return f"a {name} {spec.model.formula}"
    if spec.kind == "overlap":
        lists = ", ".join(spec.lists) if spec.lists else "every station"
        text = (
            f"the overlap of the lists of {spec.identifier} at {lists} "
            "(counts of persons only)"
        )
    elif spec.kind in SURVIVAL_NAMES and spec.survival is not None:
        event = spec.survival.text.split(", ", 1)[1]
        text = f"{SURVIVAL_NAMES[spec.kind]} of {spec.survival.time}, event {event}"
    elif spec.kind == "crosstab":
        text = f"a crosstab of {spec.group_by[0]} by {spec.group_by[1]}"
    elif spec.aggregates:
        text = ", ".join(aggregate.label for aggregate in spec.aggregates)
    else:
        text = f"a {spec.kind} analysis"
    if spec.group_by and spec.kind != "crosstab":
        text += f", grouped by {', '.join(spec.group_by)}"
    if spec.where is not None:
        text += ", on a subset of the rows"
    return text


def describe_columns(spec: QuerySpec) -> list[str]:
    """Return ``column (use, use)`` for each column the query reads."""
    return [
        f"{column} ({', '.join(sorted(_use_words(use) for use in uses))})"
        for column, uses in sorted(spec.columns_used().items())
    ]


@dataclass(frozen=True)
class Preview:
    """An estimate of what a request would reveal, from what the hub stores."""

    analysis: str
    columns: list[str]
    output_shape: str
    checks: list[str]
    budget: str
    similar: list[str]
    parse_error: str = ""


def output_shape(spec: QuerySpec, schema: DatasetSchema, station_count: int) -> str:
    """Return the size of the output a query would release, in words."""
    cells = 1
    for column in spec.group_by:
        cells *= len(schema.column(column).levels or [])
    if getattr(spec, "training", None) is not None:
        return "the trained model's parameters and its metrics"
    if spec.model is not None:
        parameters = 1
        for term in spec.model.terms:
            levels = schema.column(term.column).levels or []
            parameters += len(levels) - 1 if term.categorical else 1
        shape = (
            f"{parameters} coefficients with standard errors, confidence "
            "intervals and p-values, and n"
        )
        if spec.kind == "logit":
            shape += ", and the number of iterations"
        return shape
    groups = f" for each of {cells} groups" if spec.group_by else ""
    if spec.kind == "km":
        return (
            "the survival estimate with its 95% interval at each day with an "
            f"event, the numbers at risk and the median{groups}"
        )
    if spec.kind == "logrank":
        return (
            "the chi-square statistic with its degrees of freedom and p-value, "
            f"and the observed and expected events{groups}"
        )
    if spec.kind == "overlap":
        lists = len(spec.lists) or station_count
        figures = 1 + 4 * lists + comb(lists, 2)
        groups = f" in each of {cells} groups" if spec.group_by else ""
        return f"{figures} counts of persons over {lists} lists{groups}"
    if spec.kind == "crosstab":
        return f"a table of {cells} cells of counts"
    statistics = len(spec.aggregates)
    if not statistics:
        return f"not estimated here for {spec.kind} queries"
    if not spec.group_by:
        return f"{statistics} figure(s), each with the n behind it"
    return (
        f"{cells} groups x {statistics} statistic(s) = {cells * statistics} "
        "figures, each with the n behind it"
    )


def disclosure_checks(
    spec: QuerySpec, rules: CollaborationRules, requester_holds_data: bool
) -> list[str]:
    """Return the disclosure checks the stations will apply to a query's output."""
    minimum = rules.min_count
    checks = []
    if spec.kind == "overlap":
        checks += [
            f"min_list_size: every list holds at least {minimum} persons",
            f"min_count: every released count is 0 or at least {minimum}",
            f"min_region: at least {minimum} persons on each combination of lists",
            "differencing: no answer within 1 to "
            f"{minimum - 1} persons of an earlier overlap answer",
        ]
        return checks
    checks.append(f"min_count: at least {minimum} persons behind every figure")
    if requester_holds_data:
        checks.append(
            "min_count_without_requester: the pool without the requester's own "
            f"organisation also reaches {minimum}"
        )
    if spec.kind == "ols":
        checks += [
            f"min_residual_df: n - parameters at least {rules.min_residual_df}",
            "max_parameter_fraction: parameters at most "
            f"{rules.max_parameter_fraction:g} of n",
            f"min_level_count: at least {rules.min_level_count} persons at every "
            "factor level",
            "full_rank: the model's columns are not collinear",
        ]
        return checks
    if spec.kind == "logit":
        checks += [
            f"min_residual_df: n - parameters at least {rules.min_residual_df}",
            "max_parameter_fraction: parameters at most "
            f"{rules.max_parameter_fraction:g} of n",
            f"min_level_count: at least {rules.min_level_count} persons with each "
            "outcome "
            "and at every factor level",
            "full_rank: the model's columns are not collinear",
            "converged: the fit converges; only the final coefficients are opened",
        ]
        return checks
    if spec.kind in SURVIVAL_NAMES:
        checks.append(
            f"min_count: every released step rests on at least {minimum} persons "
            "at risk, and later days are merged into one tail that is not released"
        )
        return checks
    if spec.kind == "train":
        checks += [
            "max_parameter_fraction: parameters at most "
            f"{rules.max_parameter_fraction:g} of n",
            "only the pooled n, loss and accuracy, never one station's figures",
        ]
        training = spec.training
        if training is not None and getattr(training, "dp_epsilon", None):
            checks.append(
                f"differential privacy: at most epsilon {training.dp_epsilon:g} at "
                f"delta {training.dp_delta:g} for any one person, over "
                f"{training.rounds} round(s) and the final evaluation; the "
                "stations add Gaussian noise to every released sum"
            )
        elif getattr(rules, "max_dp_epsilon", None) is not None:
            checks.append(
                "differential privacy: missing, but the collaboration requires "
                f"dp_epsilon at most {rules.max_dp_epsilon:g}"
            )
        return checks
    if spec.kind not in ("aggregate", "crosstab"):
        checks.append(
            f"the checks of {spec.kind} queries in docs/disclosure-control.md"
        )
        return checks
    magnitudes = [a for a in spec.aggregates if a.func in ("sum", "mean", "var")]
    # Dominance and p% come with newer rule sets; older hubs have neither.
    dominance_k = getattr(rules, "dominance_k", None)
    if magnitudes and dominance_k is not None and dominance_k < 1:
        checks.append(
            f"dominance: the {getattr(rules, 'dominance_n', 2)} largest "
            f"contributions make up at most {dominance_k:.0%} of a sum"
        )
    p_percent = getattr(rules, "p_percent", None)
    if magnitudes and p_percent:
        checks.append(
            f"p_percent: a sum less its two largest contributions is at least "
            f"{p_percent:.0%} of the largest"
        )
    if any(aggregate.func == "var" for aggregate in spec.aggregates):
        checks.append("variance_needs_two: at least 2 persons behind a variance")
    if rules.differencing_window:
        checks.append(
            "differencing: compared with the last "
            f"{rules.differencing_window} released queries on {spec.dataset}"
        )
        # The triples come from the newest queries of the differencing window.
        triples_window = min(
            getattr(rules, "overlapping_filters_window", 0), rules.differencing_window
        )
        if triples_window:
            checks.append(
                "overlapping_filters: with each pair of the last "
                f"{triples_window} released queries, no count of fewer than "
                f"{minimum} persons follows from the three"
            )
    checks.append(f"max_group_levels: at most {rules.max_group_levels} cells")
    return checks


def budget_use(
    request: Request,
    visible: list[Request],
    rules: CollaborationRules,
    now: datetime | None = None,
) -> tuple[int, int | None]:
    """Return how many requests the submitter has counted against the budget.

    Counts the submitter's requests in the collaboration in the last
    ``budget_period_days`` days, as the hub does, except those the rule
    check rejected at submission. Returns ``(used, limit)``.

    NOTE: a steward can list only the requests touching their organisation,
    so this can be lower than the hub's count for the scientist.
    """
    now = now or datetime.now(UTC)
    since = now - timedelta(days=rules.budget_period_days)
    used = 0
    for other in visible:
        if (
            other.submitter != request.submitter
            or other.collaboration != request.collaboration
            or other.created_at <= since
        ):
            continue
        rejection = other.rejection or {}
        if other.state == "rejected" and rejection.get("rule") != "steward_rejection":
            continue
        used += 1
    return used, rules.max_requests


def similar_requests(request: Request, visible: list[Request]) -> list[str]:
    """Return earlier requests on the same dataset or with a close query text."""
    scored = []
    for other in visible:
        if other.id >= request.id:
            continue
        ratio = difflib.SequenceMatcher(None, request.query, other.query).ratio()
        same_dataset = (
            other.dataset == request.dataset
            and other.collaboration == request.collaboration
            and other.submitter == request.submitter
        )
        if ratio >= SIMILAR_RATIO or same_dataset:
            scored.append((ratio, other))
    scored.sort(key=lambda pair: (-pair[0], -pair[1].id))
    return [
        f"request {other.id} by {other.submitter}, {other.state.replace('_', ' ')} "
        f"({ratio:.0%} alike): {other.query}"
        for ratio, other in scored[:SIMILAR_LIMIT]
    ]


def preview(
    request: Request,
    schemas: dict[str, DatasetSchema],
    rules: CollaborationRules,
    stations: dict[str, list[str]],
    visible: list[Request],
    requester_organisation: str,
    organisations_by_station: dict[str, str],
) -> Preview:
    """Return what `request` would reveal: shape, checks, budget, similar requests.

    `stations` maps each dataset to the stations holding it and
    `organisations_by_station` each station to its organisation.
    """
    used, limit = budget_use(request, visible, rules)
    if limit is None:
        budget = (
            f"{request.submitter} has {used} request(s) in the last "
            f"{rules.budget_period_days} days; the collaboration sets no budget"
        )
    else:
        budget = (
            f"{request.submitter} has used {used} of {limit} requests in the "
            f"last {rules.budget_period_days} days"
        )
    similar = similar_requests(request, visible)
    try:
        spec = parse_query(request.query, schemas)
    except QueryError as exc:
        return Preview(
            analysis="",
            columns=[],
            output_shape="",
            checks=[],
            budget=budget,
            similar=similar,
            parse_error=f"the query no longer fits the registered schemas: {exc}",
        )
    holders = stations.get(spec.dataset, [])
    requester_holds_data = any(
        organisations_by_station.get(station) == requester_organisation
        for station in holders
    )
    return Preview(
        analysis=describe_analysis(spec),
        columns=describe_columns(spec),
        output_shape=output_shape(spec, schemas[spec.dataset], len(holders)),
        checks=disclosure_checks(spec, rules, requester_holds_data),
        budget=budget,
        similar=similar,
    )


def request_summary(request: Request, organisation: str) -> str:
    """Return one line for a request in a list: id, who, state, own decision."""
    own = next((a for a in request.approvals if a.organisation == organisation), None)
    decided = f", {organisation} {own.decision}" if own else ""
    purpose = request.purpose
    if len(purpose) > PURPOSE_SHOWN:
        purpose = purpose[: PURPOSE_SHOWN - 3] + "..."
    return (
        f"#{request.id} {request.submitter}, {request.collaboration}/"
        f"{request.dataset}: {purpose} ({request.state.replace('_', ' ')}{decided})"
    )


def _items(values: list[str]) -> str:
    if not values:
        return "<li>none</li>"
    return "".join(f"<li>{html.escape(value)}</li>" for value in values)


def request_html(request: Request, found: Preview) -> str:
    """Return a request in plain words, and its decisions, as HTML."""
    decisions = [
        f"{a.organisation}: {a.decision} by {a.steward}"
        + (f" ({a.reason})" if a.reason else "")
        for a in request.approvals
    ]
    decided = {a.organisation for a in request.approvals}
    waiting = [o for o in request.touched_organisations if o not in decided]
    parts = [
        f"<h4>Request {request.id}: {html.escape(request.state.replace('_', ' '))}"
        "</h4>",
        f"<p><b>{html.escape(request.submitter)}</b> asks, in collaboration "
        f"<b>{html.escape(request.collaboration)}</b>, for "
        f"<b>{html.escape(found.analysis or 'an analysis')}</b> of dataset "
        f"<b>{html.escape(request.dataset)}</b>.</p>",
        f"<p>Purpose: <i>{html.escape(request.purpose)}</i></p>",
        f"<p>Query: <code>{html.escape(request.query)}</code></p>",
        f"<p>Submitted {_short_time(request.created_at)}; expires "
        f"{_short_time(request.expires_at)}.</p>",
        f"<p>Columns read:</p><ul>{_items(found.columns)}</ul>",
        f"<p>Decisions so far:</p><ul>{_items(decisions)}</ul>",
        f"<p>Waiting for: {html.escape(', '.join(waiting) or 'nobody')}</p>",
    ]
    if request.rejection:
        message = str(request.rejection.get("message"))
        parts.append(f"<p>Rejection: {html.escape(message)}</p>")
    if request.error:
        parts.append(f"<p>Error: {html.escape(request.error)}</p>")
    return "\n".join(parts)


def preview_html(found: Preview) -> str:
    """Return the preview of what a request would reveal as HTML."""
    parts = ["<h4>What it would reveal</h4>"]
    if found.parse_error:
        parts.append(f"<p><b>Warning:</b> {html.escape(found.parse_error)}</p>")
    parts += [
        f"<p>Output: {html.escape(found.output_shape or 'unknown')}</p>",
        f"<p>Disclosure checks that apply:</p><ul>{_items(found.checks)}</ul>",
        f"<p>Budget: {html.escape(found.budget)}</p>",
        f"<p>Similar earlier requests:</p><ul>{_items(found.similar)}</ul>",
    ]
    return "\n".join(parts)


def filter_audit(
    frame: pd.DataFrame,
    user: str | None = None,
    organisation: str | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    request_id: int | None = None,
) -> pd.DataFrame:
    """Return the audit records that match every filter given.

    `event` matches a prefix such as ``request.``; `since` and `until` are
    UTC times (naive ones are taken as UTC), `since` inclusive and `until`
    exclusive.
    """
    if user:
        frame = frame[frame["user"] == user]
    if organisation:
        frame = frame[frame["organisation"] == organisation]
    if event:
        frame = frame[frame["event"].str.startswith(event)]
    if request_id is not None:
        about = frame["objects"].map(
            lambda objects: (
                isinstance(objects, dict) and objects.get("request") == request_id
            )
        )
        frame = frame[about.astype(bool)]
    times = pd.to_datetime(frame["time"], utc=True)
    if since is not None:
        keep = times >= _utc(since)
        frame, times = frame[keep], times[keep]
    if until is not None:
        frame = frame[times < _utc(until)]
    return frame


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def audit_csv(frame: pd.DataFrame) -> str:
    """Return audit records as CSV text, with objects and details as JSON."""
    frame = frame.copy()
    for column in ("objects", "details"):
        frame[column] = frame[column].map(
            lambda value: json.dumps(value, sort_keys=True)
        )
    return frame.to_csv(index=False)
