"""The data scientist's client: Python API and IPython magics.

In Python::

    from linksight_kernel import Client
    result = Client().query("SELECT mean(age) FROM lung GROUP BY sex")

In IPython or Jupyter, ``%load_ext linksight_kernel`` adds ``%linksight``
and ``%%linksight``; ``%linksight?`` shows their help.
"""

from __future__ import annotations

from typing import Any

from linksight.query import QueryError
from linksight_kernel.client import Client
from linksight_kernel.config import write_config
from linksight_kernel.errors import (
    AuthenticationError,
    ConfigError,
    DisclosureBlockedError,
    HubError,
    HubUnreachableError,
    LinksightError,
    NotFoundError,
    PermissionDeniedError,
    RequestFailedError,
    RequestNotReleasedError,
    RequestRejectedError,
    ResultDecryptionError,
    WaitTimeoutError,
)
from linksight_kernel.requests import Request
from linksight_kernel.results import Result

__all__ = [
    "AuthenticationError",
    "Client",
    "ConfigError",
    "DisclosureBlockedError",
    "HubError",
    "HubUnreachableError",
    "LinksightError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryError",
    "Request",
    "RequestFailedError",
    "RequestNotReleasedError",
    "RequestRejectedError",
    "Result",
    "ResultDecryptionError",
    "WaitTimeoutError",
    "load_ipython_extension",
    "write_config",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%linksight`` magics (``%load_ext linksight_kernel``)."""
    from linksight_kernel.magics import LinksightMagics

    ipython.register_magics(LinksightMagics)
