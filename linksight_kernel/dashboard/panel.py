"""What every tab of the dashboard shares: the session, messages, tables."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import pandas as pd

from linksight.query import QueryError
from linksight_kernel.client import Client
from linksight_kernel.errors import LinksightError

logger = logging.getLogger("linksight.dashboard")


@dataclass
class Session:
    """The steward signed in, and the collaboration every tab shows."""

    client: Client
    user: str
    organisation: str
    roles: list[str]
    collaboration: str
    station_configs: list[str] = field(default_factory=list)

    # The client has no method for some of the steward's calls, such as
    # reading a collaboration's stations, so the dashboard makes them itself.

    def get(self, path: str) -> Any:
        """Call the hub's API with GET as the steward and return the JSON body."""
        return self.client._call("GET", path)

    def post(self, path: str) -> Any:
        """Call the hub's API with POST and no body; return the JSON body."""
        return self.client._call("POST", path)


def frame_html(frame: pd.DataFrame, empty: str = "nothing to show") -> str:
    """Return a DataFrame as an HTML table, every value escaped."""
    if frame.empty:
        return f"<p><i>{html.escape(empty)}</i></p>"
    if frame.index.name is not None:
        frame = frame.reset_index()
    return frame.to_html(
        classes="ls-table", escape=True, na_rep="", border=0, index=False
    )


# Table styling for the HTML widgets: the Voila page has no table style.
TABLE_STYLE = """
<style>
.ls-table { border-collapse: collapse; font-size: 13px; margin: 4px 0 10px 0; }
.ls-table th, .ls-table td { border-bottom: 1px solid #ddd; padding: 3px 8px;
  text-align: left; vertical-align: top; }
.ls-table thead th { background: #f2f4f7; }
.ls-request-detail p, .ls-request-preview p { margin: 4px 0; }
.ls-request-detail ul, .ls-request-preview ul { margin: 2px 0 6px 0; }
.ls-request-preview { padding-left: 16px; }
a.ls-download-link { color: #1565c0; text-decoration: underline; }
.ls-ok { color: #2e7d32; font-weight: bold; }
.ls-bad { color: #c62828; font-weight: bold; }
</style>
"""


class Panel:
    """A tab: its widgets, a message line, and error handling for its actions."""

    title = ""

    def __init__(self, session: Session):
        self.session = session
        self.message = widgets.HTML()
        self.message.add_class("ls-message")

    def show_message(self, text: str, ok: bool = True) -> None:
        """Show a message under the tab's buttons, green or red."""
        css = "ls-ok" if ok else "ls-bad"
        self.message.value = f'<span class="{css}">{html.escape(text)}</span>'

    def run(self, action: Callable[[], str | None]) -> None:
        """Run a button's action; show its message, or the hub's error message."""
        try:
            done = action()
        except (LinksightError, QueryError, ValueError) as exc:
            logger.info("dashboard action failed: %s", exc)
            self.show_message(str(exc), ok=False)
            return
        if done:
            self.show_message(done)

    def button(
        self, label: str, action: Callable[[], str | None], css: str, style: str = ""
    ) -> widgets.Button:
        """Return a button that runs `action` through :meth:`run`."""
        button = widgets.Button(description=label, button_style=style)
        button.add_class(css)
        button.on_click(lambda _: self.run(action))
        return button

    def refresh(self) -> None:
        """Read the hub again and redraw the tab."""
        raise NotImplementedError

    @property
    def widget(self) -> widgets.Widget:
        """The tab's top widget."""
        raise NotImplementedError
