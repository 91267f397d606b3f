"""`linksight demo`: the example analyses end to end on real data.

The statistics run on the NCCTG lung data; the waiting-list queries compare
three clinics' COVID test lists (one clinic per station) with overlap(id).

Starts a hub and three stations on 127.0.0.1, submits each query as a
scientist of a fourth organisation that holds no data, approves it as the
steward of every station, waits for the secure computation, and prints the
federated result beside the same computation by pandas on the pooled data.
The exit status is 1 if a released value differs from the pooled value
(counts exactly, other statistics beyond 1e-6) or a query's outcome is not
the expected one.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from linksight.network import (
    LocalNetwork,
    NetworkError,
    covid_schema_path,
    covid_waiting_lists,
    lung_data,
)
from linksight.overlap_reference import compare_overlap, pooled_overlap
from linksight.schema import load_schema

TOLERANCE = 1e-6


def _group_records(
    frame: pd.DataFrame, by: str, column: str | None, funcs: list[str]
) -> list[dict[str, Any]]:
    records = []
    for level, group in frame.groupby(by, sort=True):
        record: dict[str, Any] = {by: int(level)}
        for func in funcs:
            if func == "count":
                record["count(*)"] = int(len(group))
                continue
            values = group[column].dropna().astype(float)
            label = f"{func}({column})"
            record[label] = float(values.mean() if func == "mean" else values.var())
            record[f"{label}.n"] = int(values.count())
        records.append(record)
    return records


def _pooled_crosstab(frame: pd.DataFrame) -> list[dict[str, Any]]:
    table = pd.crosstab(frame["sex"], frame["ph.ecog"]).reindex(
        index=[1, 2], columns=[0, 1, 2, 3, 4], fill_value=0
    )
    return [
        {"sex": int(sex), "ph.ecog": int(ecog), "count(*)": int(table.loc[sex, ecog])}
        for sex in table.index
        for ecog in table.columns
    ]


@dataclass(frozen=True)
class DemoQuery:
    """A demo query, its pandas reference and the outcome it must have."""

    name: str
    query: str
    pooled: Callable[[pd.DataFrame], list[dict[str, Any]]]
    expected_status: str
    # None: the lung study.
    collaboration: str | None = None


WAITING_LISTS = "waiting-lists"


def _pooled_waiting_lists(stations: list[str]) -> list[dict[str, Any]]:
    lists = covid_waiting_lists()
    rules = load_schema(covid_schema_path()).column("subject_id").normalise
    frames = {name: lists[name] for name in stations}
    return pooled_overlap(frames, "subject_id", rules=rules)


DEMO_QUERIES = [
    DemoQuery(
        "count by sex",
        "SELECT count(*) FROM lung GROUP BY sex",
        lambda df: _group_records(df, "sex", None, ["count"]),
        "released",
    ),
    DemoQuery(
        "age by sex",
        "SELECT mean(age), var(age) FROM lung GROUP BY sex",
        lambda df: _group_records(df, "sex", "age", ["mean", "var"]),
        "released",
    ),
    DemoQuery(
        "weight loss by sex",
        "SELECT mean(wt.loss) FROM lung GROUP BY sex",
        lambda df: _group_records(df, "sex", "wt.loss", ["mean"]),
        "released",
    ),
    DemoQuery(
        "sex by ECOG score",
        "SELECT crosstab(sex, ph.ecog) FROM lung",
        _pooled_crosstab,
        "blocked",
    ),
    DemoQuery(
        "poor performance score by sex",
        "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex",
        lambda df: _group_records(
            df[df["ph.ecog"] >= 2], "sex", "age", ["count", "mean"]
        ),
        "released",
    ),
    DemoQuery(
        "waiting lists of the two largest clinics",
        "SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-b')",
        lambda _: _pooled_waiting_lists(["station-a", "station-b"]),
        "released",
        WAITING_LISTS,
    ),
    DemoQuery(
        # Blocked: 7 persons were tested at all three clinics.
        "waiting lists of three clinics",
        "SELECT overlap(subject_id) FROM covid",
        lambda _: _pooled_waiting_lists(["station-a", "station-b", "station-c"]),
        "blocked",
        WAITING_LISTS,
    ),
]


def compare_records(
    federated: list[dict[str, Any]], pooled: list[dict[str, Any]], keys: list[str]
) -> list[str]:
    """Return a description of every value that differs between the two results.

    Rows are matched on the `keys` columns. Counts and n must be equal; other
    statistics may differ by TOLERANCE, absolute or relative.
    """
    problems = []
    pooled_by_key = {tuple(r[k] for k in keys): r for r in pooled}
    if len(federated) != len(pooled):
        problems.append(f"{len(federated)} federated rows but {len(pooled)} pooled")
    for row in federated:
        key = tuple(row[k] for k in keys)
        reference = pooled_by_key.get(key)
        if reference is None:
            problems.append(f"group {key} is not in the pooled result")
            continue
        for column, value in row.items():
            if column in keys:
                continue
            expected = reference.get(column)
            if expected is None:
                problems.append(f"{column} for {key} is not in the pooled result")
            elif column.endswith(".n") or column.startswith("count("):
                if value != expected:
                    problems.append(f"{column} for {key}: {value} != {expected}")
            elif not math.isclose(
                value, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE
            ):
                problems.append(f"{column} for {key}: {value!r} != {expected!r}")
    return problems


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_table(entry: dict[str, Any], keys: list[str]) -> None:
    print(f"\n== {entry['name']}: {entry['query']}")
    print(
        f"   status: {entry['status']}"
        + (f" (rule {entry['rule']})" if entry["rule"] else "")
    )
    if entry["status"] == "blocked":
        print(f"   {entry['message']}")
        return
    # convert_dtypes keeps counts integer beside a suppressed (missing) one.
    federated = pd.DataFrame(entry["federated"]).convert_dtypes().set_index(keys)
    pooled = pd.DataFrame(entry["pooled"]).convert_dtypes().set_index(keys)
    side_by_side = pd.concat(
        {"federated": federated, "pooled (pandas)": pooled}, axis=1
    )
    with pd.option_context("display.width", 120, "display.precision", 6):
        print(side_by_side.to_string())
    print(
        "   "
        + (
            "equal to pooled"
            if not entry["problems"]
            else "DIFFERENT: " + "; ".join(entry["problems"])
        )
    )


def run_queries(network: LocalNetwork, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Submit, approve and wait for every demo query; compare with pandas."""
    entries = []
    for demo_query in DEMO_QUERIES:
        started = time.monotonic()
        request = network.submit(
            demo_query.query,
            purpose=f"demo: {demo_query.name}",
            collaboration=demo_query.collaboration,
        )
        if request["state"] != "awaiting_approval":
            raise NetworkError(
                f"query {demo_query.name!r} was {request['state']} at submission: "
                f"{request.get('rejection')}"
            )
        network.approve_all(request["id"])
        request = network.wait_for(request["id"])
        if request["state"] not in ("completed", "blocked_by_disclosure_control"):
            raise NetworkError(
                f"query {demo_query.name!r} ended {request['state']}: "
                f"{request.get('error')}"
            )
        result = network.result(request["id"])["result"]
        _progress(
            f"{demo_query.name}: {result['status']} after "
            f"{time.monotonic() - started:.1f} s"
        )
        pooled = demo_query.pooled(frame)
        keys = result["group_by"]
        if result["kind"] == "overlap":
            keys = [*keys, "measure", "lists"]
        problems = []
        if result["status"] != demo_query.expected_status:
            problems.append(
                f"expected {demo_query.expected_status} but was {result['status']}"
            )
        if result["status"] == "released" and result["kind"] == "overlap":
            problems += compare_overlap(result["rows"], pooled, result["group_by"])
        elif result["status"] == "released":
            problems += compare_records(result["rows"], pooled, keys)
        blocked = result.get("blocked") or {}
        entries.append(
            {
                "name": demo_query.name,
                "query": demo_query.query,
                "status": result["status"],
                "rule": blocked.get("rule"),
                "message": blocked.get("message"),
                "request_id": request["id"],
                "federated": result["rows"],
                "pooled": pooled,
                "problems": problems,
                "keys": keys,
            }
        )
    return entries


def run_demo(json_output: bool = False, keep: bool = False) -> int:
    """Run the demo and return the process exit status."""
    root = Path(tempfile.mkdtemp(prefix="linksight-demo-"))
    network = LocalNetwork(root)
    try:
        if keep:
            _progress(f"state and logs in {root}")
        else:
            _progress(
                f"state and logs in {root}, deleted at the end unless the demo "
                "fails (--keep keeps them)"
            )
        network.start_hub()
        _progress(f"hub running on {network.hub_url}")
        network.set_up_lung_study()
        network.set_up_waiting_lists(WAITING_LISTS)
        _progress(
            "imported the lung data and one clinic's COVID tests at stations "
            + ", ".join(s.name for s in network.stations)
        )
        network.start_stations()
        _progress("stations online; submitting queries")
        entries = run_queries(network, lung_data())
    except NetworkError as error:
        _progress(f"demo failed: {error}\nlogs are in {root / 'logs'}")
        keep = True
        return 2
    finally:
        network.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)

    failures = [e for e in entries if e["problems"]]
    if json_output:
        document = {
            "queries": [
                {
                    k: e[k]
                    for k in ("name", "query", "status", "rule", "federated", "pooled")
                }
                for e in entries
            ]
        }
        print(json.dumps(document, indent=2))
    else:
        for entry in entries:
            _print_table(entry, entry["keys"])
        print(
            f"\n{len(entries) - len(failures)} of {len(entries)} queries as "
            "expected and equal to pandas on the pooled data"
        )
    return 1 if failures else 0
