"""An overlap task at one station: its party input and its result document.

:func:`prepare_overlap` computes this station's lists and writes everything
the MPC party of :mod:`station.secure_overlap` needs; :func:`build_overlap_result`
turns the opened output into the result document that every station reports
alike. The released figures are kept in the station's ledger, so that a
later query whose answer differs from this one by fewer than ``min_count``
persons is refused (the differencing check runs in MPC, against these).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from linksight.signing import canonical_json
from linksight.tasks import TaskSpec
from station.overlap_lists import OverlapLists

# Random padding elements per cell and list: each owner adds 0 to this many,
# so that the other stations learn a list's size only to within this range.
PADDING_MAX = 100
# Earlier released answers each new overlap answer is compared with.
HISTORY_LIMIT = 20


@dataclass(frozen=True)
class OverlapPlan:
    """The roles of the parties in one overlap task: list owners and comparer."""

    owners: list[int]
    comparer: int


def plan_roles(task: TaskSpec) -> OverlapPlan:
    """Choose the list owners and the comparer among the task's parties.

    The owners are the stations named in AT, or all. The comparer, which
    learns the sizes of the lists' intersections, is preferably a party
    with no list, and never one of the requester's organisation unless
    every party is.
    """
    names = [party.station for party in task.parties]
    lists = task.query.lists or names
    owners = [names.index(name) for name in lists]
    owners.sort()

    def rank(index: int) -> tuple[bool, bool, int]:
        party = task.parties[index]
        return (
            party.organisation == task.requester_organisation,
            index in owners,
            index,
        )

    comparer = min(range(len(names)), key=rank)
    return OverlapPlan(owners, comparer)


def party_input(
    task: TaskSpec,
    lists: OverlapLists,
    index: int,
    history: list[dict[str, Any]],
    threads: int,
) -> dict[str, Any]:
    """Return the overlap part of the MPC party's input for party `index`."""
    plan = plan_roles(task)
    owner = index in plan.owners
    return {
        "analysis": "overlap",
        "task_id": task.task_id,
        "owners": plan.owners,
        "comparer": plan.comparer,
        "cells": lists.cell_names,
        "lists": lists.identifiers if owner else None,
        "invalid": lists.invalid if owner else None,
        "min_count": task.disclosure.min_count,
        "history": history,
        "threads": threads,
        "padding_max": PADDING_MAX,
    }


def build_overlap_result(
    task: TaskSpec, lists: OverlapLists, output: dict[str, Any]
) -> dict[str, Any]:
    """Return the result document of an overlap task."""
    names = [party.station for party in task.parties]
    plan = plan_roles(task)
    min_count = task.disclosure.min_count
    group_by = list(lists.group_by)
    result: dict[str, Any] = {
        "query": task.query_text,
        "kind": "overlap",
        "group_by": group_by,
        "min_count": min_count,
        "stations": names,
        "lists": [names[i] for i in plan.owners],
    }
    checks = _checks(output, lists, names)
    result["checks"] = checks
    if output["status"] == "released":
        result["status"] = "released"
        result["blocked"] = None
        result["columns"] = [*group_by, "measure", "lists", "persons", "share"]
        result["rows"] = _rows(output, lists, names)
    else:
        result["status"] = "blocked"
        result["columns"] = []
        result["rows"] = []
        result["blocked"] = _blocked(output, checks, min_count)
    result["sha256"] = hashlib.sha256(canonical_json(result)).hexdigest()
    return result


def released_figures(output: dict[str, Any]) -> dict[str, int]:
    """Return the released figures by key, for the differencing history."""
    if output.get("status") != "released":
        return {}
    return {
        key: value
        for key, value, figure in zip(
            output["keys"], output["values"], output["figures"], strict=True
        )
        if value is not None and figure["measure"] != "invalid"
    }


def _label(figure: dict[str, Any], names: list[str]) -> str:
    return ", ".join(names[i] for i in figure["lists"])


def _checks(
    output: dict[str, Any], lists: OverlapLists, names: list[str]
) -> list[dict[str, Any]]:
    # Every check has rule, statistic, cell (group values) and passed, as
    # the checks of aggregate results do.
    checks: list[dict[str, Any]] = []
    if output.get("rule") == "min_list_size":
        for check in output["checks"]:
            name = names[check["list"]]
            checks.append(
                {
                    "rule": "min_list_size",
                    "statistic": f"list_size ({name})",
                    "list": name,
                    "cell": {},
                    "passed": check["passed"],
                }
            )
        return checks
    for check in output["checks"]:
        if "region" in check:
            measure = "only_on"
            label = ", ".join(names[i] for i in check["region"])
            cell = lists.cells[check["cell"]]
        else:
            figure = output["figures"][check["figure"]]
            measure = figure["measure"]
            label = _label(figure, names)
            cell = lists.cells[figure["cell"]]
        checks.append(
            {
                "rule": check["rule"],
                "statistic": f"{measure} ({label})",
                "measure": measure,
                "lists": label,
                "cell": dict(zip(lists.group_by, cell, strict=True)),
                "passed": check["passed"],
            }
        )
    for request in output.get("suspect_requests", []):
        checks.append(
            {
                "rule": "differencing",
                "statistic": f"request {request}",
                "request": request,
                "cell": {},
                "passed": False,
            }
        )
    return checks


def _rows(
    output: dict[str, Any], lists: OverlapLists, names: list[str]
) -> list[dict[str, Any]]:
    sizes = {
        (f["cell"], tuple(f["lists"])): value
        for f, value in zip(output["figures"], output["values"], strict=True)
        if f["measure"] == "list_size"
    }
    rows = []
    for figure, value in zip(output["figures"], output["values"], strict=True):
        row: dict[str, Any] = dict(
            zip(lists.group_by, lists.cells[figure["cell"]], strict=True)
        )
        row["measure"] = figure["measure"]
        row["lists"] = _label(figure, names)
        row["persons"] = value
        share = None
        if figure["measure"] == "elsewhere":
            size = sizes.get((figure["cell"], tuple(figure["lists"])))
            if value is not None and size:
                share = value / size
        row["share"] = share
        rows.append(row)
    return rows


def _blocked(
    output: dict[str, Any], checks: list[dict[str, Any]], min_count: int
) -> dict[str, Any]:
    rule = output.get("rule") or "min_count"
    if rule == "min_list_size":
        short = [c["list"] for c in checks if not c["passed"]]
        message = (
            f"blocked by disclosure control, rule min_list_size: the list(s) of "
            f"{', '.join(short)} have fewer than {min_count} valid identifiers "
            "after the filter, so even the list size would single persons out. "
            "Widen the filter or leave these stations out with AT (...)."
        )
        return {"rule": rule, "message": message, "failed": len(short)}
    if rule == "differencing":
        # The history is newest first; the checks name every earlier answer.
        newest = output["suspect_requests"][0]
        message = (
            "blocked by disclosure control, rule differencing: a figure of this "
            f"answer differs from the released answer to request {newest} "
            f"by 1 to {min_count - 1} persons, so comparing the two would single "
            "those persons out. The query is refused and logged as a possible "
            "differencing attack. Ask a question whose answer differs from "
            f"earlier ones by at least {min_count} persons."
        )
        return {"rule": rule, "message": message, "failed": 1}
    failed = [c for c in checks if not c["passed"] and c.get("measure") != "invalid"]
    rule = failed[0]["rule"] if failed else "min_count"
    described = "; ".join(
        c["statistic"]
        + (
            " for " + ", ".join(f"{k}={v}" for k, v in c["cell"].items())
            if c["cell"]
            else ""
        )
        for c in failed
    )
    # only_on (a, b) counts the persons on exactly lists a and b; it is not
    # released, but differences of released figures would reveal it.
    message = (
        f"blocked by disclosure control, rule {rule}: {len(failed)} figure(s) "
        f"rest on fewer than {min_count} persons: {described}. To release the "
        "output, compare fewer lists with AT (...), widen the filter, or group "
        "on fewer or coarser columns."
    )
    return {"rule": rule, "message": message, "failed": len(failed)}
