"""The data stewards' dashboard: ipywidgets over the hub's API, served by Voila.

::

    from linksight_kernel.dashboard import steward_dashboard

    steward_dashboard()        # in notebooks/dashboards/steward_dashboard.ipynb

It has four tabs. Collaboration shows the members, the stations and their
health, and the dataset schemas. Rules shows the version in force, the
proposals and the history. The approval queue shows each request in plain
words with a preview of what it would reveal. The audit trail has filters,
chain verification and a CSV export.

It connects like the command line: the hub URL and token from
LINKSIGHT_HUB_URL and LINKSIGHT_TOKEN or the config file, and a profile of
the config file from the page's ``?profile=NAME`` or from
LINKSIGHT_DASHBOARD_PROFILE. ``linksight dashboard`` starts Voila on
127.0.0.1 with these set.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENV_PROFILE", "ENV_STATION_CONFIGS", "Dashboard", "steward_dashboard"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the command line, which needs only
    # views and server, does not load ipywidgets and matplotlib.
    if name in ("Dashboard", "steward_dashboard"):
        from linksight_kernel.dashboard import app

        return getattr(app, name)
    if name in ("ENV_PROFILE", "ENV_STATION_CONFIGS"):
        from linksight_kernel.dashboard import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
