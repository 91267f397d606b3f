"""Progress of a request while it waits for approval and runs.

The bar has one step per organisation that must approve and one per
station that must finish, so it fills as stewards approve and stations
report. In a Jupyter kernel it is an ipywidgets display; elsewhere a tqdm
text bar on stderr. Both end with the same summary line.
"""

from __future__ import annotations

import sys
import time
from typing import Literal, Protocol

from linksight_kernel.requests import Request

ProgressMode = Literal["auto", "widget", "text", "none"]

# Plain-text stand-in for the widget, kept constant so that saved notebooks
# compare equal between runs.
WIDGET_TEXT = "Linksight request progress (an ipywidgets display)"


def progress_steps(request: Request) -> tuple[int, int]:
    """Return (steps done, total steps): approvals plus finished stations."""
    total = len(request.touched_organisations) + len(request.parties)
    done = len(set(request.approved_by)) + len(request.stations_finished)
    if request.state in ("approved", "running"):
        # Approval may have been automatic, with no steward's decision.
        done = len(request.touched_organisations) + len(request.stations_finished)
    if request.state in ("completed", "blocked_by_disclosure_control"):
        done = total
    return done, max(total, 1)


def describe_stations(request: Request) -> str:
    """Return each station and its status, as "station-a completed, ...".

    A station in a training run also shows its round, as "round 3 of 10".
    """
    return ", ".join(f"{p.station} {p.describe()}" for p in request.parties)


def summary_line(request: Request, seconds: float | None) -> str:
    """Return the closing line: final state, time taken, approvers, stations.

    `seconds` is None when the request had ended before it was followed.
    """
    line = f"request {request.id}: {request.state.replace('_', ' ')}"
    if seconds is not None:
        line += f" after {seconds:.1f} s"
    if request.approved_by:
        # Sorted, because stewards approve in any order.
        line += f"; approved by {', '.join(sorted(set(request.approved_by)))}"
    if request.stations_finished:
        line += f"; computed by {', '.join(request.stations_finished)}"
    return line


class Progress(Protocol):
    """A display that follows one request."""

    def update(self, request: Request) -> None:
        """Show the request's current state."""

    def close(self, request: Request) -> None:
        """Show the final state and the summary line."""


class NoProgress:
    """Shows nothing."""

    def update(self, request: Request) -> None:
        """Show nothing."""

    def close(self, request: Request) -> None:
        """Show nothing."""


def status_text(request: Request) -> str:
    """Return the request's state and, once it has any, its stations' status."""
    text = request.describe()
    if request.parties:
        text += f"; stations: {describe_stations(request)}"
    return text


class TextProgress:
    """A tqdm bar on stderr, then the summary line.

    When stderr is no terminal, such as a log file, a line is printed at each
    change instead of a redrawn bar.
    """

    def __init__(self, request: Request):
        from tqdm import tqdm

        self.started = time.monotonic()
        self.final_at_start = request.finished
        self.last_text = ""
        self.bar = None
        if sys.stderr.isatty():
            done, total = progress_steps(request)
            self.bar = tqdm(
                total=total,
                initial=done,
                desc=f"request {request.id}",
                unit="step",
                file=sys.stderr,
                bar_format="{desc}: {bar:20} {n_fmt}/{total_fmt}{postfix}",
                leave=True,
            )
        if not self.final_at_start:
            self.update(request)

    def update(self, request: Request) -> None:
        """Move the bar and show the state and each station's status."""
        text = status_text(request)
        if self.bar is None:
            if text != self.last_text:
                print(f"request {request.id}: {text}", file=sys.stderr, flush=True)
        else:
            self.bar.n = progress_steps(request)[0]
            self.bar.set_postfix_str(text)
        self.last_text = text

    def close(self, request: Request) -> None:
        """Fill the bar and print the summary line."""
        if self.bar is not None:
            self.update(request)
            self.bar.close()
        seconds = None if self.final_at_start else time.monotonic() - self.started
        print(summary_line(request, seconds), file=sys.stderr, flush=True)


class WidgetProgress:
    """An ipywidgets bar with the state and each station's status."""

    def __init__(self, request: Request):
        import ipywidgets as widgets
        from IPython.display import display

        self.started = time.monotonic()
        done, total = progress_steps(request)
        self.bar = widgets.IntProgress(
            value=done, min=0, max=total, description=f"request {request.id}"
        )
        self.label = widgets.HTML()
        self.box = widgets.VBox([self.bar, self.label])
        # Display the widget with a constant plain-text form, because
        # the widget's own repr changes with every update.
        bundle = {
            "text/plain": WIDGET_TEXT,
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.box.model_id,
            },
        }
        display(bundle, raw=True)
        self.update(request)

    def update(self, request: Request) -> None:
        """Move the bar and show the state and each station's status."""
        import html

        done, total = progress_steps(request)
        self.bar.max = total
        self.bar.value = done
        self.label.value = (
            f"{html.escape(request.describe())}<br>"
            f"{html.escape(describe_stations(request))}"
        )

    def close(self, request: Request) -> None:
        """Show the final state, colour the bar, and print the summary line."""
        self.update(request)
        self.bar.bar_style = "success" if request.state == "completed" else "danger"
        seconds = time.monotonic() - self.started
        print(summary_line(request, seconds), flush=True)


def in_kernel() -> bool:
    """Return whether this code runs in a Jupyter kernel with ipywidgets."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def start_progress(request: Request, mode: ProgressMode = "auto") -> Progress:
    """Return a progress display for `request` in the given mode.

    "auto" picks the widget in a Jupyter kernel and the text bar elsewhere.
    """
    if mode == "none":
        return NoProgress()
    if mode == "widget" or (mode == "auto" and in_kernel()):
        return WidgetProgress(request)
    return TextProgress(request)
