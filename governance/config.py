"""Hub settings: where its state lives, where it listens, and its deadlines.

Every setting can be given as an environment variable named
``LINKSIGHT_HUB_`` plus the setting's name in upper case, such as
``LINKSIGHT_HUB_DATABASE_URL``. Values passed in code (or as CLI options)
win over the environment, which wins over the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "LINKSIGHT_HUB_"
DEFAULT_PORT = 8700
KEY_FILE_NAME = "hub_ed25519.pem"
DATABASE_FILE_NAME = "hub.db"


class HubSettings(BaseModel):
    """Settings of one hub process."""

    model_config = ConfigDict(frozen=True)

    state_dir: Path = Field(
        description="directory that contains hub.db and the signing key hub_ed25519.pem"
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the hub database; empty means "
        "sqlite:///{state_dir}/hub.db",
    )
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=DEFAULT_PORT, gt=0, lt=65536)
    # A log-rank test or a logistic fit takes minutes on a loaded two-core
    # machine; stations refuse deadlines above their max_mpc_seconds (300).
    task_timeout_seconds: float = Field(
        default=290.0,
        gt=0,
        description="deadline in seconds for the MPC run of a task, sent to "
        "stations in the signed task",
    )
    user_token_days: float | None = Field(
        default=90.0,
        gt=0,
        description="lifetime in days of a user's token; None means no expiry",
    )
    station_token_days: float | None = Field(
        default=365.0,
        gt=0,
        description="lifetime in days of a station's token; None means no expiry",
    )
    auth_failure_limit: int = Field(
        default=20,
        ge=1,
        description="failed authentications from one client address within "
        "auth_failure_window_seconds after which that address gets 429",
    )
    auth_failure_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="length in seconds of the window for auth_failure_limit",
    )
    tls_certificate: Path | None = Field(
        default=None,
        description="PEM certificate chain for HTTPS, such as one the "
        "collaboration CA signed with `linksight ca sign-hub`; unset means HTTP",
    )
    tls_key: Path | None = Field(
        default=None, description="PEM private key of tls_certificate"
    )
    approval_deadline_seconds: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="seconds after submission after which a request that is "
        "still awaiting approval, or approved but not started, expires",
    )

    @model_validator(mode="after")
    def _default_database_url(self) -> HubSettings:
        if not self.database_url:
            url = f"sqlite:///{self.state_dir / DATABASE_FILE_NAME}"
            object.__setattr__(self, "database_url", url)
        return self

    @model_validator(mode="after")
    def _check_tls_files(self) -> HubSettings:
        given = {"tls_certificate": self.tls_certificate, "tls_key": self.tls_key}
        missing = [name for name, path in given.items() if path is None]
        if len(missing) == 1:
            raise ValueError(
                f"{missing[0]} is not set: HTTPS needs both tls_certificate and "
                "tls_key; set both, or neither for plain HTTP"
            )
        for name, path in given.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} does not exist or is not a file")
        return self

    @property
    def scheme(self) -> str:
        """ "https" when a TLS certificate is set, else "http"."""
        return "https" if self.tls_certificate is not None else "http"

    @property
    def key_path(self) -> Path:
        """Path of the hub's Ed25519 signing key."""
        return self.state_dir / KEY_FILE_NAME

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> HubSettings:
        """Build settings from ``LINKSIGHT_HUB_*`` variables and `overrides`.

        Overrides whose value is None are ignored, so CLI options that were
        not given fall back to the environment and then to the defaults.

        Raises
        ------
        pydantic.ValidationError
            If a value is invalid or ``state_dir`` is given nowhere.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            variable = ENV_PREFIX + name.upper()
            if variable in environ:
                values[name] = environ[variable]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
