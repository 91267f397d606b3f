"""The scientist's Python client of the governance hub.

::

    from linksight_kernel import Client

    client = Client("http://127.0.0.1:8700", token)   # or Client() with a config
    client.datasets("lung-study")
    result = client.query(
        "SELECT mean(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex",
        collaboration="lung-study",
        purpose="age by sex in patients with symptoms",
    )
    result.df

A query is parsed and checked against the collaboration's dataset schemas
before it is sent, so a mistyped column is reported at once, with the
closest name. The hub checks it again against the collaboration's rules.
Only schemas (names, types, allowed uses) are ever shown, never values.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from nacl.public import PrivateKey

from linksight.query import QuerySpec, parse_query
from linksight.result_encryption import (
    ResultDecryptionError as SealedResultError,
)
from linksight.result_encryption import (
    ResultKeyError,
    encode_key,
    fingerprint,
    load_or_create_private_key,
    open_result,
    read_private_key,
    write_private_key,
)
from linksight.schema import ColumnSchema, DatasetSchema
from linksight_kernel.config import (
    ENV_CA_CERT,
    ENV_HUB_URL,
    Connection,
    resolve_connection,
)
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
    RequestRejectedError,
    ResultDecryptionError,
    WaitTimeoutError,
)
from linksight_kernel.progress import ProgressMode, start_progress
from linksight_kernel.requests import STATES_WITH_RESULT, Request
from linksight_kernel.results import Result

logger = logging.getLogger("linksight.client")

DEFAULT_PURPOSE = "interactive analysis (no purpose given)"
DEFAULT_WAIT_SECONDS = 600.0
POLL_SECONDS = 0.5

_ERRORS_BY_STATUS: dict[int, type[HubError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
}


def allowed_uses(column: ColumnSchema) -> str:
    """Return how a query may use `column`, as the hub's rules allow."""
    if column.role == "identifier":
        return "link only"
    uses = []
    if column.is_numeric:
        uses.append("statistic")
    if column.type == "categorical":
        uses.append("group by")
    uses.append("filter")
    return ", ".join(uses)


def column_values(column: ColumnSchema) -> str:
    """Return a column's allowed values: its levels, or its range, or ""."""
    if column.levels is not None:
        return "levels " + ", ".join(map(str, column.levels))
    if column.min is not None and column.max is not None:
        low, high = column.min, column.max
        if column.type == "integer":
            low, high = int(low), int(high)
        return f"{low} to {high}"
    return ""


def _trusted_certificates(ca_file: Path | None) -> ssl.SSLContext | bool:
    """Return the TLS context that trusts `ca_file`, or True for the system's CAs."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"the hub's CA certificate {ca_file} contains no PEM certificate "
            f"({exc.reason}); name the collaboration CA's certificate file, "
            "ca.crt in the folder of `linksight ca init`"
        ) from exc


class Client:
    """A connection to a governance hub as one user.

    Parameters
    ----------
    hub_url, token
        The hub and your token. Either may be left out and come from
        LINKSIGHT_HUB_URL and LINKSIGHT_TOKEN, or from the config file
        (LINKSIGHT_CONFIG or ``~/.config/linksight/client.toml``).
    profile
        A profile of the config file to connect as, such as a steward's.
    collaboration
        The collaboration used when a call names none. Defaults to the
        config file's, or to your only collaboration.
    purpose
        The purpose recorded with each request that states none.
    timeout
        Seconds to wait for each HTTP call.
    """

    def __init__(
        self,
        hub_url: str | None = None,
        token: str | None = None,
        *,
        profile: str | None = None,
        config_path: str | Path | None = None,
        collaboration: str | None = None,
        purpose: str | None = None,
        timeout: float = 30.0,
    ):
        path = Path(config_path).expanduser() if config_path else None
        self.connection: Connection = resolve_connection(
            hub_url, token, profile=profile, path=path
        )
        self.collaboration = collaboration or self.connection.collaboration
        self.purpose = purpose or DEFAULT_PURPOSE
        self._http = httpx.Client(
            base_url=self.connection.hub_url,
            headers={"Authorization": f"Bearer {self.connection.token}"},
            timeout=timeout,
            verify=_trusted_certificates(self.connection.ca_certificate),
        )
        self._result_key: PrivateKey | None = None
        self._result_key_registered = False

    @property
    def hub_url(self) -> str:
        """The hub's base URL."""
        return self.connection.hub_url

    def __repr__(self) -> str:
        profile = (
            f", profile={self.connection.profile!r}" if self.connection.profile else ""
        )
        return f"Client(hub_url={self.hub_url!r}{profile})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def as_profile(self, profile: str) -> Client:
        """Return a client for another profile of the same config file."""
        return Client(
            profile=profile,
            config_path=self.connection.config_path,
            collaboration=self.collaboration,
        )

    # HTTP

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
                raise HubUnreachableError(
                    f"the hub at {self.hub_url} did not respond ({exc}); check "
                    "that it runs and that the URL is right"
                ) from exc
            if "Hostname mismatch" in str(exc):
                raise ConfigError(
                    f"the hub's TLS certificate is not issued for the host in "
                    f"{self.hub_url} ({exc}); use the host name the certificate "
                    "was signed for (`linksight ca sign-hub --host`)"
                ) from exc
            ca_file = self.connection.ca_certificate
            trusted = f"CA certificate {ca_file}" if ca_file else "system's CAs"
            raise ConfigError(
                f"the hub at {self.hub_url} presented a TLS certificate that the "
                f"{trusted} did not verify ({exc}); set {ENV_CA_CERT} or "
                "ca_certificate in the config file to the collaboration CA's "
                "certificate that signed the hub's"
            ) from exc
        except httpx.TransportError as exc:
            hint = ""
            if self.hub_url.startswith("http://"):
                hint = ", and use https:// if the hub serves HTTPS"
            raise HubUnreachableError(
                f"the hub at {self.hub_url} did not respond ({exc}); check that "
                f"it runs and that the URL is right{hint}"
            ) from exc
        try:
            body = response.json()
        except ValueError as exc:
            # A hub's unhandled error comes as plain text from its server.
            if response.status_code < 500:
                raise self._not_a_hub(method, path, response) from exc
            body = {"detail": {"message": response.text[:300]}}
        if response.status_code < 400:
            return body
        detail = body.get("detail", {}) if isinstance(body, dict) else {}
        if not isinstance(detail, dict):
            detail = {"message": str(detail)}
        code = str(detail.get("code", f"http_{response.status_code}"))
        message = str(detail.get("message", response.text))
        error_class = _ERRORS_BY_STATUS.get(response.status_code, HubError)
        raise error_class(response.status_code, code, message, detail)

    def _not_a_hub(
        self, method: str, path: str, response: httpx.Response
    ) -> ConfigError:
        kind = response.headers.get("content-type", "unknown").split(";")[0]
        return ConfigError(
            f"the server at {self.hub_url} is not a Linksight hub: it responded to "
            f"{method} {path} with HTTP {response.status_code} and a {kind} "
            f"page instead of JSON; check the hub URL ({ENV_HUB_URL} or hub_url "
            "in the config file)"
        )

    # Who and what

    def me(self) -> dict[str, Any]:
        """Return the caller's name, organisation and roles."""
        return dict(self._call("GET", "/users/me"))

    def collaborations(self) -> pd.DataFrame:
        """List the collaborations of your organisation and their members."""
        rows = [
            {"collaboration": c["name"], "members": ", ".join(c["members"])}
            for c in self._call("GET", "/collaborations")
        ]
        return pd.DataFrame(rows, columns=["collaboration", "members"])

    def default_collaboration(self, collaboration: str | None = None) -> str:
        """Return `collaboration`, the client's default, or your only one.

        Raises
        ------
        LinksightError
            If none is given and you are a member of none or of several.
        """
        if collaboration or self.collaboration:
            return str(collaboration or self.collaboration)
        names = [c["name"] for c in self._call("GET", "/collaborations")]
        if len(names) == 1:
            return str(names[0])
        if not names:
            raise LinksightError(
                "your organisation is a member of no collaboration; ask the hub "
                "admin to add it to one"
            )
        raise LinksightError(
            f"choose a collaboration: you are a member of {', '.join(names)}; "
            "pass collaboration=NAME (or --collaboration NAME)"
        )

    def schemas(self, collaboration: str | None = None) -> dict[str, DatasetSchema]:
        """Return the schema of each dataset of a collaboration, by name."""
        name = self.default_collaboration(collaboration)
        datasets = self._call("GET", f"/collaborations/{name}/datasets")
        return {d["name"]: DatasetSchema.model_validate(d["schema"]) for d in datasets}

    def datasets(self, collaboration: str | None = None) -> pd.DataFrame:
        """List a collaboration's datasets: stations, column count, description."""
        name = self.default_collaboration(collaboration)
        rows = []
        for dataset in self._call("GET", f"/collaborations/{name}/datasets"):
            schema = DatasetSchema.model_validate(dataset["schema"])
            rows.append(
                {
                    "dataset": dataset["name"],
                    "stations": ", ".join(dataset["stations"]),
                    "columns": len(schema.columns),
                    "description": schema.description,
                }
            )
        return pd.DataFrame(
            rows, columns=["dataset", "stations", "columns", "description"]
        )

    def schema(self, dataset: str, collaboration: str | None = None) -> pd.DataFrame:
        """Describe a dataset's columns: type, allowed uses, range or levels.

        Raises
        ------
        NotFoundError
            If the collaboration has no such dataset; the message names the
            closest one.
        """
        schemas = self.schemas(collaboration)
        if dataset not in schemas:
            import difflib

            close = difflib.get_close_matches(dataset, list(schemas), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            available = ", ".join(sorted(schemas)) or "none"
            raise NotFoundError(
                404,
                "not_found",
                f"dataset {dataset!r} not found{hint}; available: {available}",
                {},
            )
        rows = [
            {
                "column": column.name,
                "type": column.type,
                "allowed uses": allowed_uses(column),
                "values": column_values(column),
                "missing allowed": column.nullable,
                "description": column.description,
            }
            for column in schemas[dataset].columns
        ]
        return pd.DataFrame(rows).set_index("column")

    def budget(self, collaboration: str | None = None) -> dict[str, Any]:
        """Return your query budget in a collaboration: limit, used, remaining."""
        name = self.default_collaboration(collaboration)
        return dict(self._call("GET", f"/collaborations/{name}/budget"))

    # Requests

    def check(self, query: str, collaboration: str | None = None) -> QuerySpec:
        """Parse `query` and check it against the collaboration's schemas.

        Raises
        ------
        linksight.query.QueryError
            With the position of the mistake and the closest name.
        """
        return parse_query(query, self.schemas(collaboration))

    def submit(
        self,
        query: str,
        collaboration: str | None = None,
        purpose: str | None = None,
    ) -> Request:
        """Check `query`, submit it, and return the new request.

        A request that breaks a collaboration rule comes back in state
        ``rejected`` with the rule in ``rejection``; :meth:`wait` and
        :meth:`query` raise for it.
        """
        name = self.default_collaboration(collaboration)
        self.check(query, name)
        self.register_result_key()
        body = self._call(
            "POST",
            "/requests",
            json={
                "collaboration": name,
                "query": query,
                "purpose": purpose or self.purpose,
            },
        )
        request = Request.from_json(body)
        logger.info("submitted request %s in %s", request.id, name)
        return request

    def request(self, request_id: int) -> Request:
        """Return the current state of a request."""
        return Request.from_json(self._call("GET", f"/requests/{int(request_id)}"))

    def requests(self, state: str | None = None) -> list[Request]:
        """List the requests you may see, oldest first, optionally in one state."""
        params = {"state": state} if state else None
        return [
            Request.from_json(body)
            for body in self._call("GET", "/requests", params=params)
        ]

    def wait(
        self,
        request_id: int,
        timeout: float = DEFAULT_WAIT_SECONDS,
        progress: ProgressMode = "auto",
    ) -> Request:
        """Wait until a request is final, showing its progress, and return it.

        Raises
        ------
        WaitTimeoutError
            If it is not final after `timeout` seconds. The request goes on;
            wait again or revoke it.
        """
        request = self.request(request_id)
        display = start_progress(request, progress)
        deadline = time.monotonic() + timeout
        try:
            while not request.finished:
                if time.monotonic() > deadline:
                    raise WaitTimeoutError(
                        f"request {request.id} is still {request.state} after "
                        f"{timeout:g} s; wait again with wait({request.id}) or "
                        f"revoke it with revoke({request.id})",
                        request,
                    )
                time.sleep(POLL_SECONDS)
                request = self.request(request_id)
                display.update(request)
        finally:
            display.close(request)
        return request

    def result(self, request_id: int) -> Result:
        """Return the result of a completed or blocked request.

        Raises
        ------
        HubError
            With code ``not_ready`` if the request has no result yet.
        """
        request = self.request(request_id)
        body = self._call("GET", f"/requests/{int(request_id)}/result")
        document = self._open_result(body["result"], int(request_id))
        return Result.from_json({**body, "result": document}, request.collaboration)

    # Result key

    @property
    def result_key_path(self) -> Path:
        """The file of your X25519 private key, which opens your results."""
        return self.connection.result_key_path

    def result_public_key(self) -> str:
        """Return your result public key (base64), creating the key pair if none."""
        return encode_key(self._load_result_key().public_key)

    def _load_result_key(self) -> PrivateKey:
        if self._result_key is None:
            try:
                key, created = load_or_create_private_key(self.result_key_path)
            except ResultKeyError as exc:
                raise ConfigError(str(exc)) from exc
            if created:
                logger.info(
                    "created result key %s (fingerprint %s)",
                    self.result_key_path,
                    fingerprint(key.public_key),
                )
            self._result_key = key
        return self._result_key

    def register_result_key(self, force: bool = False) -> dict[str, Any]:
        """Make the hub's copy of your result public key match your key file.

        Called before every submission; it asks the hub once per client
        unless `force`. A different key registered at the hub, as from
        another computer, is replaced, and the replacement is logged:
        results sealed to that key open only where it is kept.
        """
        public_key = self.result_public_key()
        if self._result_key_registered and not force:
            return {"public_key": public_key, "fingerprint": fingerprint(public_key)}
        try:
            registered = self._call("GET", "/users/me/result-key")
        except NotFoundError:
            registered = None
        if registered is None or registered["public_key"] != public_key:
            if registered is not None:
                logger.warning(
                    "replacing the result key registered at %s (fingerprint %s) "
                    "with the key in %s (fingerprint %s); results sealed to the "
                    "old key open only where that key is kept",
                    self.hub_url,
                    registered["fingerprint"],
                    self.result_key_path,
                    fingerprint(public_key),
                )
            registered = self._call(
                "PUT", "/users/me/result-key", json={"public_key": public_key}
            )
            logger.info(
                "registered result key %s at %s",
                registered["fingerprint"],
                self.hub_url,
            )
        self._result_key_registered = True
        return dict(registered)

    def rotate_result_key(self) -> dict[str, Any]:
        """Create a new result key pair and register it; return the hub's record.

        The old private key is kept beside the new one, named by its
        fingerprint (``result.key.FINGERPRINT``), so that results sealed to
        it still open.
        """
        old = self._load_result_key()
        path = self.result_key_path
        kept = path.with_name(f"{path.name}.{fingerprint(old.public_key)}")
        write_private_key(kept, old)
        self._result_key = PrivateKey.generate()
        write_private_key(path, self._result_key)
        return self.register_result_key(force=True)

    def _open_result(self, released: dict[str, Any], request_id: int) -> dict[str, Any]:
        key = self._load_result_key()
        sealed_to = str(released.get("recipient_key", ""))
        if sealed_to != encode_key(key.public_key):
            # A result sealed before a rotation opens with the kept old key.
            try:
                older = self.result_key_path.with_name(
                    f"{self.result_key_path.name}.{fingerprint(sealed_to)}"
                )
            except ResultKeyError:
                older = None
            if older is not None and older.is_file():
                try:
                    key = read_private_key(older)
                except ResultKeyError as exc:
                    raise ConfigError(str(exc)) from exc
        try:
            return open_result(released, key, request_id)
        except SealedResultError as exc:
            raise ResultDecryptionError(str(exc)) from exc

    def outcome(self, request: Request) -> Result:
        """Return the released result of a final request, or raise why there is none.

        Raises
        ------
        DisclosureBlockedError
            If disclosure control blocked the output; ``error.result`` has
            the checks.
        RequestRejectedError
            If a rule or a steward rejected it, or it was revoked or expired.
        RequestFailedError
            If the stations failed to compute it.
        """
        if request.state in STATES_WITH_RESULT:
            result = self.result(request.id)
            if result.released:
                return result
            raise DisclosureBlockedError(
                f"request {request.id}: {result.blocked_message}",
                request,
                result,
            )
        if request.state == "rejected":
            rejection = request.rejection or {}
            raise RequestRejectedError(
                f"request {request.id} was rejected by rule "
                f"{rejection.get('rule')}: {rejection.get('message')}",
                request,
            )
        if request.state in ("revoked", "expired"):
            raise RequestRejectedError(
                f"request {request.id} was {request.state} before it ran; "
                "submit it again",
                request,
            )
        if request.state == "failed":
            raise RequestFailedError(
                f"request {request.id} failed: {request.error}; nothing was "
                "revealed, so submitting it again is safe",
                request,
            )
        raise WaitTimeoutError(
            f"request {request.id} is still {request.state}; wait for it first",
            request,
        )

    def query(
        self,
        query: str,
        collaboration: str | None = None,
        purpose: str | None = None,
        timeout: float = DEFAULT_WAIT_SECONDS,
        progress: ProgressMode = "auto",
    ) -> Result:
        """Submit a query, wait for approval and the computation, return the result.

        Raises
        ------
        linksight.query.QueryError
            If the query does not parse or fit the schemas; nothing is sent.
        DisclosureBlockedError, RequestRejectedError, RequestFailedError
            If the request ends without a released result, as :meth:`outcome`.
        WaitTimeoutError
            If it is not final within `timeout` seconds.
        """
        request = self.submit(query, collaboration, purpose)
        if not request.finished:
            request = self.wait(request.id, timeout=timeout, progress=progress)
        return self.outcome(request)

    # Decisions (stewards) and withdrawal

    def approve(self, request_id: int, reason: str = "") -> Request:
        """Approve a request for your organisation (steward)."""
        body = self._call(
            "POST", f"/requests/{int(request_id)}/approve", json={"reason": reason}
        )
        return Request.from_json(body)

    def reject(self, request_id: int, reason: str) -> Request:
        """Reject a request for your organisation, with a reason (steward)."""
        body = self._call(
            "POST", f"/requests/{int(request_id)}/reject", json={"reason": reason}
        )
        return Request.from_json(body)

    def revoke(self, request_id: int, reason: str = "") -> Request:
        """Withdraw a request that has not started running."""
        body = self._call(
            "POST", f"/requests/{int(request_id)}/revoke", json={"reason": reason}
        )
        return Request.from_json(body)

    # Audit trail (stewards and admins)

    def audit(self, request_id: int | None = None) -> pd.DataFrame:
        """Return the hub's audit records, oldest first, as a DataFrame.

        With `request_id`, only the records about that request. Columns are
        the record fields: seq, time, event, organisation, user, role,
        purpose, objects, outcome, details, prev_hash and hash.
        """
        params = {} if request_id is None else {"request_id": int(request_id)}
        records = self._call("GET", "/audit", params=params)
        columns = [
            "seq",
            "time",
            "event",
            "organisation",
            "user",
            "role",
            "purpose",
            "objects",
            "outcome",
            "details",
            "prev_hash",
            "hash",
        ]
        return pd.DataFrame(records, columns=columns)

    def verify_audit(self) -> dict[str, Any]:
        """Verify the hub's audit chain; return ok, records, first_bad_seq, reason."""
        return self._call("GET", "/audit/verify")

    # Collaboration rules (stewards propose and accept changes)

    def rules(self, collaboration: str | None = None) -> list[dict[str, Any]]:
        """Return every version of a collaboration's rules, newest first."""
        name = self.default_collaboration(collaboration)
        return self._call("GET", f"/collaborations/{name}/rules")

    def propose_rules(
        self, changes: dict[str, Any], reason: str, collaboration: str | None = None
    ) -> dict[str, Any]:
        """Propose new values for some rules (steward); returns the new version."""
        name = self.default_collaboration(collaboration)
        return self._call(
            "POST",
            f"/collaborations/{name}/rules",
            json={"changes": changes, "reason": reason},
        )

    def accept_rules(
        self, version: int, collaboration: str | None = None
    ) -> dict[str, Any]:
        """Accept a proposed rule version for your organisation (steward)."""
        name = self.default_collaboration(collaboration)
        return self._call("POST", f"/collaborations/{name}/rules/{int(version)}/accept")

    def withdraw_rules(
        self, version: int, collaboration: str | None = None
    ) -> dict[str, Any]:
        """Withdraw an open proposal of rules (steward of a member)."""
        name = self.default_collaboration(collaboration)
        path = f"/collaborations/{name}/rules/{int(version)}/withdraw"
        return self._call("POST", path)
