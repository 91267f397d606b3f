"""Turn the opened MPC output into the result document every station reports.

Every party opens the same bits and values, so every station builds the same
document; the hub accepts a result only when all parties report it alike.
"""

from __future__ import annotations

import hashlib
from typing import Any

from linksight.signing import canonical_json
from linksight.tasks import TaskSpec
from station.aggregates import Layout

RULE_DESCRIPTIONS = {
    "min_count": "fewer than {min_count} persons",
    "min_count_without_requester": (
        "fewer than {min_count} persons outside the requester's own organisation"
    ),
    "variance_needs_two": "fewer than 2 values, so no variance",
    "dominance": (
        "a total dominated by its {dominance_n} largest values, which make up "
        "more than {dominance_percent}% of it"
    ),
    "p_percent": (
        "a total from which the second-largest contributor could estimate the "
        "largest value to within {p_percent}%"
    ),
}

# The overlapping-filters check names the earlier requests it paired.
OVERLAPPING_PREFIX = "counts versus pairs of requests "


def build_result(
    task: TaskSpec, layout: Layout, output: dict[str, Any]
) -> dict[str, Any]:
    """Return the result document: rows when released, checks always."""
    min_count = task.disclosure.min_count
    checks = []
    for check in output["checks"]:
        if check["rule"] == "overlapping_filters":
            checks.append(
                {
                    "rule": "overlapping_filters",
                    "statistic": OVERLAPPING_PREFIX + ", ".join(check["request_ids"]),
                    "cell": {},
                    "passed": check["passed"],
                }
            )
            continue
        if check["rule"] == "differencing":
            what = check["column"] or "rows"
            checks.append(
                {
                    "rule": "differencing",
                    "statistic": f"{what} versus request {check['request_id']}",
                    "cell": {},
                    "passed": check["passed"],
                }
            )
            continue
        spec = layout.outputs[check["output"]]
        checks.append(
            {
                "rule": check["rule"],
                "statistic": spec.label,
                "cell": layout.cell_labels(spec.cell),
                "passed": check["passed"],
            }
        )
    failed = [c for c in checks if not c["passed"]]
    result: dict[str, Any] = {
        "query": task.query_text,
        "kind": task.query.kind,
        "group_by": layout.group_by,
        "min_count": min_count,
        "checks": checks,
        "stations": [p.station for p in task.parties],
    }
    if failed:
        result["status"] = "blocked"
        result["columns"] = []
        result["rows"] = []
        result["blocked"] = _blocked_summary(failed, task, layout)
    else:
        result["status"] = "released"
        result["blocked"] = None
        result["columns"], result["rows"] = _rows(task, layout, output["values"])
    result["sha256"] = hashlib.sha256(canonical_json(result)).hexdigest()
    return result


def _rows(
    task: TaskSpec, layout: Layout, values: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    columns = list(layout.group_by)
    for aggregate in task.query.aggregates:
        columns.append(aggregate.label)
        # A count of a column is its own n.
        if aggregate.column is not None and aggregate.func != "count":
            columns.append(f"{aggregate.label}.n")
    rows: list[dict[str, Any]] = [
        layout.cell_labels(c) for c in range(len(layout.cells))
    ]
    for spec, value in zip(layout.outputs, values, strict=True):
        row = rows[spec.cell]
        if spec.func == "count":
            row[spec.label] = value["n"]
        else:
            row[spec.label] = value["value"]
            row[f"{spec.label}.n"] = value["n"]
    return columns, rows


def _blocked_summary(
    failed: list[dict[str, Any]], task: TaskSpec, layout: Layout
) -> dict[str, Any]:
    settings = task.disclosure
    min_count = settings.min_count
    rule = failed[0]["rule"]
    if rule == "differencing":
        failed = [check for check in failed if check["rule"] == rule]
        earlier = sorted({c["statistic"].rsplit(" ", 1)[-1] for c in failed})
        message = (
            "blocked by disclosure control, rule differencing: the persons this "
            f"query covers differ from those of earlier request(s) "
            f"{', '.join(earlier)} by 1 to {min_count - 1}, whom subtracting the "
            "two results would single out. To release the output, change the "
            f"filter so that the two differ by at least {min_count} persons, or "
            "by none."
        )
        return {"rule": rule, "message": message, "failed": len(failed)}
    if rule == "overlapping_filters":
        earlier = failed[0]["statistic"].removeprefix(OVERLAPPING_PREFIX)
        message = (
            "blocked by disclosure control, rule overlapping_filters: the counts "
            "of this query and of two earlier requests among "
            f"{earlier} together determine how many persons "
            f"are in one part of their populations, and that part contains 1 to "
            f"{min_count - 1} persons. For example, the counts WHERE X, WHERE Y "
            "and WHERE X or Y give the persons in both X and Y. To release the "
            "output, use a filter that is not combined from the filters of "
            "earlier requests, or change it so that every part it splits off "
            f"from them contains at least {min_count} persons."
        )
        return {"rule": rule, "message": message, "failed": len(failed)}
    others = sorted({check["rule"] for check in failed} - {rule})
    failed = [check for check in failed if check["rule"] == rule]
    described = []
    for check in failed:
        cell = ", ".join(f"{k}={v}" for k, v in check["cell"].items()) or "all rows"
        described.append(f"{check['statistic']} for {cell}")
    reason = RULE_DESCRIPTIONS.get(rule, rule).format(
        min_count=min_count,
        dominance_n=settings.dominance_n,
        dominance_percent=round(settings.dominance_k * 100),
        p_percent=round(settings.p_percent * 100),
    )
    if rule in ("dominance", "p_percent"):
        fix = (
            "widen the filter or group on coarser columns so that no few "
            "persons make up most of the total, or release count(*) instead"
        )
    elif layout.group_by:
        fix = (
            "filter out the small groups, merge levels, or group on fewer or "
            "coarser columns"
        )
    else:
        fix = "widen the filter so that more persons are included"
    message = (
        f"blocked by disclosure control, rule {rule}: {len(failed)} figure(s) "
        f"rest on {reason}: {'; '.join(described)}. To release the output, {fix}."
    )
    if others:
        message += (
            f" Rule(s) {', '.join(others)} failed too; the checks list every "
            "failed figure."
        )
    return {"rule": rule, "message": message, "failed": len(failed)}
