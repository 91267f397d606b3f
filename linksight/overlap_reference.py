"""The overlap figures computed by pandas on pooled lists, as a reference.

The demo, the tests, the benchmark and the notebook compare every figure a
federated ``overlap(id)`` query releases with this computation on the
concatenated lists. Both normalise identifiers with the same rules, so the
reference counts exactly what the stations compare.
"""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd

from linksight.identifiers import IdentifierRules, normalise_identifiers

__all__ = ["compare_overlap", "pooled_overlap"]


def pooled_overlap(
    lists: dict[str, pd.DataFrame],
    identifier: str,
    group_by: list[str] | None = None,
    levels: dict[str, list[Any]] | None = None,
    rules: IdentifierRules | None = None,
) -> list[dict[str, Any]]:
    """Return the rows an overlap query releases, computed on pooled data.

    Parameters
    ----------
    lists
        Each station's rows after the query's filter, by station name, in
        the order of the query's lists.
    identifier
        The identifier column.
    group_by
        Categorical columns to break the figures down by.
    levels
        The declared levels of each group-by column; every combination is a
        cell, also when it is empty.
    rules
        The identifier column's normalisation rules.
    """
    group_by = list(group_by or [])
    levels = levels or {}
    names = list(lists)
    normalised = {}
    for name, frame in lists.items():
        text, valid = normalise_identifiers(frame[identifier], rules)
        normalised[name] = frame.assign(_id=text, _valid=valid)
    cells = list(itertools.product(*(levels[c] for c in group_by)))
    rows = []
    for cell in cells:
        labels = dict(zip(group_by, cell, strict=True))
        sets: dict[str, set[str]] = {}
        invalid: dict[str, int] = {}
        for name, frame in normalised.items():
            in_cell = pd.Series(True, index=frame.index)
            for column, value in labels.items():
                in_cell &= frame[column].astype(str) == str(value)
            part = frame[in_cell]
            sets[name] = set(part.loc[part["_valid"], "_id"])
            invalid[name] = int((~part["_valid"]).sum())
        rows += _cell_rows(labels, names, sets, invalid)
    return rows


def _cell_rows(
    labels: dict[str, Any],
    names: list[str],
    sets: dict[str, set[str]],
    invalid: dict[str, int],
) -> list[dict[str, Any]]:
    everyone = "\0".join(names)
    counts = pd.Series(
        [person for name in names for person in sets[name]], dtype=object
    ).value_counts()
    figures: list[tuple[str, str, int]] = [("unique", everyone, len(counts))]
    for k in range(1, len(names) + 1):
        figures.append((f"exactly_{k}", everyone, int((counts == k).sum())))
    for name in names:
        figures.append(("list_size", name, len(sets[name])))
    for first, second in itertools.combinations(names, 2):
        both = len(sets[first] & sets[second])
        figures.append(("pairwise", f"{first}\0{second}", both))
    for name in names:
        others = set().union(*(sets[n] for n in names if n != name))
        figures.append(("elsewhere", name, len(sets[name] & others)))
    for name in names:
        figures.append(("invalid", name, invalid[name]))
    rows = []
    for measure, lists, persons in figures:
        share = None
        if measure == "elsewhere" and sets[lists]:
            share = persons / len(sets[lists])
        rows.append(
            {
                **labels,
                "measure": measure,
                "lists": lists.replace("\0", ", "),
                "persons": persons,
                "share": share,
            }
        )
    return rows


def compare_overlap(
    federated: list[dict[str, Any]],
    pooled: list[dict[str, Any]],
    group_by: list[str],
    tolerance: float = 1e-9,
) -> list[str]:
    """Describe every figure that differs between the two results.

    A federated figure that disclosure control suppressed (persons None, or
    NaN once in a DataFrame) is not compared. Counts must be equal, and
    shares may differ by `tolerance`.
    """
    keys = [*group_by, "measure", "lists"]
    pooled_by_key = {tuple(str(row[k]) for k in keys): row for row in pooled}
    problems = []
    if len(federated) != len(pooled):
        problems.append(f"{len(federated)} federated rows but {len(pooled)} pooled")
    for row in federated:
        key = tuple(str(row[k]) for k in keys)
        reference = pooled_by_key.get(key)
        if reference is None:
            problems.append(f"figure {key} is not in the pooled result")
            continue
        if _missing(row["persons"]):
            continue
        if row["persons"] != reference["persons"]:
            problems.append(
                f"{key}: {row['persons']} persons but {reference['persons']} pooled"
            )
        share, expected = row.get("share"), reference.get("share")
        if _missing(share) != _missing(expected) or (
            not _missing(share) and abs(share - expected) > tolerance
        ):
            problems.append(f"{key}: share {share!r} but {expected!r} pooled")
    return problems


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))
