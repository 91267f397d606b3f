"""Exceptions of the scientist's client.

::

    LinksightError
    ├── ConfigError               no hub URL or token found, or an unsafe config file
    ├── HubUnreachableError       the hub did not respond; retrying may help
    ├── HubError                  the hub returned an error (status, code)
    │   ├── AuthenticationError   401: the token is missing or unknown
    │   ├── PermissionDeniedError 403: the caller's role or organisation may not
    │   └── NotFoundError         404: no such collaboration, dataset or request
    ├── ResultDecryptionError     a sealed result does not open with your key
    ├── WaitTimeoutError          a request did not finish within the timeout
    └── RequestNotReleasedError   a request ended without a released result
        ├── RequestRejectedError  rejected by a rule or a steward, revoked or expired
        ├── RequestFailedError    the stations failed to compute it
        └── DisclosureBlockedError disclosure control blocked its output

A query that does not parse raises :class:`linksight.query.QueryError`,
a ``ValueError`` that shows the query with a caret under the mistake.

In IPython, a request that was not released shows its message without a
traceback, because the message already says what happened and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linksight_kernel.requests import Request
    from linksight_kernel.results import Result


class LinksightError(Exception):
    """Base of every error the client raises, except QueryError."""

    #: Whether the same call may succeed later without any change.
    retryable = False


class ConfigError(LinksightError):
    """The connection settings are missing, invalid or unsafe."""


class ResultDecryptionError(LinksightError):
    """A sealed result was altered, sealed to another key, or differs between
    stations; nothing of it is shown."""


class HubUnreachableError(LinksightError):
    """The hub did not respond at its URL."""

    retryable = True


class HubError(LinksightError):
    """The hub returned an error response.

    Attributes
    ----------
    status
        The HTTP status code.
    code
        The hub's stable error code, such as ``invalid_query``.
    detail
        The whole error object the hub sent, with extra fields such as
        ``position``.
    """

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any]):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


class AuthenticationError(HubError):
    """The hub does not know the token (HTTP 401)."""


class PermissionDeniedError(HubError):
    """The caller may not do this (HTTP 403)."""


class NotFoundError(HubError):
    """The collaboration, dataset or request does not exist for the caller."""


class WaitTimeoutError(LinksightError):
    """A request did not reach a final state within the timeout."""

    retryable = True

    def __init__(self, message: str, request: Request):
        super().__init__(message)
        self.request = request


class RequestNotReleasedError(LinksightError):
    """A request ended without a released result.

    Attributes
    ----------
    request
        The request in its final state.
    result
        The result document for a blocked request, with its disclosure
        checks; None otherwise.
    """

    def __init__(self, message: str, request: Request, result: Result | None = None):
        super().__init__(message)
        self.request = request
        self.result = result

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback.
        return [f"{type(self).__name__}: {self}"]


class RequestRejectedError(RequestNotReleasedError):
    """A rule or a steward rejected the request, or it was revoked or expired."""


class RequestFailedError(RequestNotReleasedError):
    """The stations failed to compute the request."""


class DisclosureBlockedError(RequestNotReleasedError):
    """Disclosure control blocked the request's output."""
