"""The dashboard's charts, drawn with matplotlib into PNG bytes.

Figures are made without pyplot, so that no global figure is left open in
a long-running dashboard kernel.
"""

from __future__ import annotations

import io
from collections import Counter

import pandas as pd
from matplotlib.figure import Figure

from linksight_kernel.requests import Request

# Colours by how a request ended, or that it is still under way.
STATE_COLOURS = {
    "completed": "#2e7d32",
    "awaiting_approval": "#f9a825",
    "approved": "#1565c0",
    "running": "#1565c0",
    "submitted": "#9e9e9e",
    "rejected": "#c62828",
    "blocked_by_disclosure_control": "#ef6c00",
    "failed": "#6a1b9a",
    "revoked": "#757575",
    "expired": "#757575",
}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return buffer.getvalue()


def requests_by_state(requests: list[Request]) -> bytes:
    """Draw how many requests are in each state, as a horizontal bar chart."""
    counts = Counter(request.state for request in requests)
    figure = Figure(figsize=(5.2, 2.8))
    axes = figure.subplots()
    if not counts:
        axes.text(0.5, 0.5, "no requests yet", ha="center", va="center")
        axes.set_axis_off()
        return _png(figure)
    states = sorted(counts, key=lambda state: (-counts[state], state))
    axes.barh(
        [state.replace("_", " ") for state in states],
        [counts[state] for state in states],
        color=[STATE_COLOURS.get(state, "#607d8b") for state in states],
    )
    axes.invert_yaxis()
    axes.set_xlabel("requests")
    axes.set_title("Requests by state")
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _png(figure)


def budget_use(rows: list[tuple[str, int, int | None]]) -> bytes:
    """Draw each scientist's requests in the budget period against the limit.

    Each of `rows` is ``(scientist, used, limit)``; a limit of None means none.
    """
    figure = Figure(figsize=(5.2, 2.8))
    axes = figure.subplots()
    if not rows:
        axes.text(0.5, 0.5, "no scientist has submitted yet", ha="center")
        axes.set_axis_off()
        return _png(figure)
    names = [name for name, _, _ in rows]
    used = [count for _, count, _ in rows]
    axes.barh(names, used, color="#1565c0", label="used")
    limits = [limit for _, _, limit in rows]
    if any(limit is not None for limit in limits):
        for index, limit in enumerate(limits):
            if limit is not None:
                axes.plot([limit, limit], [index - 0.4, index + 0.4], color="#c62828")
        axes.plot([], [], color="#c62828", label="budget")
        axes.legend(loc="lower right", fontsize="small")
    axes.invert_yaxis()
    axes.set_xlabel("requests in the budget period")
    axes.set_title("Budget use per scientist")
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _png(figure)


def audit_activity(frame: pd.DataFrame) -> bytes:
    """Draw the audit records per kind of event, most frequent first."""
    figure = Figure(figsize=(5.2, 2.8))
    axes = figure.subplots()
    if frame.empty:
        axes.text(0.5, 0.5, "no audit records match", ha="center", va="center")
        axes.set_axis_off()
        return _png(figure)
    counts = frame["event"].value_counts().head(10)
    axes.barh(list(counts.index), list(counts.values), color="#455a64")
    axes.invert_yaxis()
    axes.set_xlabel("records")
    axes.set_title(f"Audit records by event (top {len(counts)})")
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _png(figure)
