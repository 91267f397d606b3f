"""Errors of the REST API, always sent as ``{"detail": {"code", "message"}}``.

``code`` is a stable identifier that clients branch on, and ``message`` a
sentence for people that names the value, the rule and the fix. Some errors
add fields, such as ``position`` for an invalid query. The handlers here
bring FastAPI's own errors (invalid bodies, unknown paths) and unexpected
exceptions into the same shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

# Codes for errors that FastAPI or Starlette raise with a plain-text detail.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
}


class ErrorDetail(BaseModel):
    """An error's stable code for programs and its message for people."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable identifier, such as not_found")
    message: str = Field(description="what failed, on which value, and the fix")


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: ErrorDetail


_ERROR_DESCRIPTIONS = {
    401: "The bearer token is missing, unknown, expired or revoked.",
    403: "The caller's role or organisation does not allow this call.",
    404: "The named object does not exist, or the caller may not see it.",
    409: "The object exists already, or its state does not allow this call.",
    422: "A path, query or body value is invalid, or the body is not JSON.",
    429: "Too many failed authentications from the caller's address.",
}

_ERROR_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "Seconds until the address may try again.",
            "schema": {"type": "string"},
        }
    },
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` that declare these error status codes.

    Pass the result as ``responses=`` of a router or route, so that clients
    and schema-based tests know every status an endpoint can return.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status_code in status_codes:
        response: dict[str, Any] = {
            "model": ErrorBody,
            "description": _ERROR_DESCRIPTIONS[status_code],
        }
        if status_code in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status_code]
        responses[status_code] = response
    return responses


class ApiError(HTTPException):
    """An HTTP error with a stable code and a message for people."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ):
        super().__init__(
            status_code,
            detail={"code": code, "message": message, **fields},
            headers=headers,
        )
        self.code = code
        self.message = message


# Body fields named as people know them: the scientist's query text, and
# the purpose and reasons typed in the clients. Other fields are named by
# their JSON key.
_FIELD_NAMES = {
    "query": "the query",
    "purpose": "the purpose",
    "reason": "the reason",
    "collaboration": "the collaboration name",
}
_EMPTY_FIXES = {
    "query": "write a query, such as SELECT count(*) FROM lung",
    "purpose": "say why the query is needed",
    "reason": "say why",
}
_TOO_LONG_FIXES = {
    "query": "shorten it, or split the analysis into several queries",
    "purpose": "shorten it to a summary; it is recorded with every audit record",
}


def _describe_location(location: tuple[Any, ...]) -> str:
    """Name the value at a FastAPI error location, such as ("body", "query")."""
    source, path = (location[0], location[1:]) if location else ("body", ())
    dotted = ".".join(str(part) for part in path)
    if source == "body":
        if not path:
            return "the request body"
        if len(path) == 1 and path[0] in _FIELD_NAMES:
            return _FIELD_NAMES[str(path[0])]
        return f"field {dotted}"
    kind = {"query": "query parameter", "path": "path parameter"}.get(
        str(source), str(source)
    )
    return f"{kind} {dotted}"


def _describe_validation_error(error: dict[str, Any]) -> str:
    """Describe one of pydantic's errors as a sentence with the value and the fix."""
    location = tuple(error.get("loc", ()))
    name = _describe_location(location)
    kind = error.get("type", "")
    context = error.get("ctx") or {}
    value = error.get("input")
    field = str(location[1]) if len(location) == 2 and location[0] == "body" else ""
    empty_fix = _EMPTY_FIXES.get(field, "give a value")
    long_fix = _TOO_LONG_FIXES.get(field, "shorten it")
    if kind == "string_too_long" and isinstance(value, str):
        return (
            f"{name} is {len(value):,} characters long, more than the hub's "
            f"limit of {context['max_length']:,}; {long_fix}"
        )
    if kind == "string_too_short" and context.get("min_length") == 1:
        return f"{name} is empty; {empty_fix}"
    if kind == "missing":
        if name == "the request body":
            return "the request body is missing; send a JSON object"
        return f"{name} is missing; add it"
    if kind == "json_invalid":
        return (
            f"the request body is not valid JSON ({context.get('error', 'invalid')} "
            f"at character {location[-1]}); send a JSON object"
        )
    if kind == "extra_forbidden":
        return f"{name} is not a field of this request; remove it"
    quoted_value = ""
    if isinstance(value, str | int | float) and len(repr(value)) <= 60:
        quoted_value = f" {value!r}"
    return f"{name}{quoted_value} is invalid: {error.get('msg', 'invalid value')}"


async def _on_validation_error(
    request: Request, exc: RequestValidationError
) -> JSONResponse:
    errors = list(exc.errors())
    message = "invalid request: " + "; ".join(
        _describe_validation_error(error) for error in errors[:3]
    )
    if len(errors) > 3:
        message += f"; and {len(errors) - 3} more"
    detail = {
        "code": "invalid_request",
        "message": message,
        "errors": jsonable_encoder(errors, custom_encoder={Exception: str}),
    }
    return JSONResponse({"detail": detail}, status_code=422)


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.detail, dict):
        detail = exc.detail
    else:
        code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no endpoint at {request.url.path}; the list is at /docs"
        elif exc.status_code == 400:
            # FastAPI raises 400 when the body bytes are not text at all, and
            # 422 when the text is not JSON. Both get 422, which every route
            # with a body declares.
            message = (
                f"invalid request body ({exc.detail}); send a JSON object "
                "encoded as UTF-8"
            )
            detail = {"code": "invalid_request", "message": message}
            return JSONResponse({"detail": detail}, status_code=422)
        detail = {"code": code, "message": message}
    return JSONResponse(
        {"detail": detail}, status_code=exc.status_code, headers=exc.headers
    )


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this handler, so the server
    # logs its traceback; logging it here too would log it twice.
    detail = {
        "code": "internal_error",
        "message": f"the hub failed on {request.method} {request.url.path} "
        f"({type(exc).__name__}); the hub's log has the traceback",
    }
    return JSONResponse({"detail": detail}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of `app` use the ``{"code", "message"}`` shape."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected_error)
