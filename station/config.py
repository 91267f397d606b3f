"""Station configuration: one TOML file plus environment variables.

Example::

    [station]
    name = "station-a"
    organisation = "Hospital A"
    state_dir = "state"                 # relative to this file
    hub_url = "http://127.0.0.1:8700"
    hub_public_key = "base64..."        # from `linksight hub public-key`
    token_file = "station.token"        # or set LINKSIGHT_STATION_TOKEN
    checkpoint_seconds = 60             # co-sign the hub's audit chain this often
    hub_ca_certificate = "ca.crt"       # for an https hub_url; optional

    [mpc]
    host = "127.0.0.1"
    port = 8811
    certificate = "station.crt"         # signed by the collaboration's CA
    key = "station.key"                 # from `linksight station csr`
    ca_certificate = "ca.crt"

    [policy]
    min_count = 10

    [[datasets]]
    name = "lung"
    schema = "lung.schema.toml"
    collaborations = ["lung-study"]
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from linksight.rules import ANALYSES
from linksight.schema import DatasetSchema, load_schema

TOKEN_VARIABLE = "LINKSIGHT_STATION_TOKEN"


class ConfigError(ValueError):
    """A station configuration that cannot be used as written."""


class StationSection(BaseModel):
    """Identity and hub connection."""

    name: str
    organisation: str
    state_dir: Path
    hub_url: str
    hub_public_key: str
    token_file: Path | None = None
    hub_ca_certificate: Path | None = Field(
        default=None,
        description="CA certificate (PEM) that an https hub's certificate must "
        "chain to; unset means the system's trusted CAs",
    )
    poll_seconds: float = Field(default=1.0, gt=0)
    max_poll_seconds: float = Field(default=30.0, gt=0)
    checkpoint_seconds: float = Field(
        default=60.0,
        gt=0,
        description="seconds between checkpoints of the hub's audit chain; the "
        "station also signs one after each task",
    )


class MpcSection(BaseModel):
    """Where this station's MPC party listens, the address peers dial, and TLS."""

    host: str = "127.0.0.1"
    port: int = Field(default=8811, gt=0, lt=65536)
    advertised_host: str | None = None
    certificate: Path | None = Field(
        default=None, description="this station's certificate from the CA (PEM)"
    )
    key: Path | None = Field(default=None, description="this station's private key")
    ca_certificate: Path | None = Field(
        default=None, description="the collaboration CA's certificate (PEM)"
    )
    allow_plaintext: bool = Field(
        default=False,
        description="run MPC without TLS; only for test networks on one machine",
    )
    threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="threads that blind identifiers in overlap queries; up to "
        "one per core",
    )

    @property
    def tls_enabled(self) -> bool:
        """Whether MPC links use TLS with the configured certificates."""
        return self.certificate is not None


class LocalPolicy(BaseModel):
    """This station's own rules; a task must satisfy them as well."""

    min_count: int = Field(default=10, ge=1)
    min_level_count: int = Field(
        default=10,
        ge=1,
        description="minimum persons at every level of a binary model outcome "
        "or covariate; a task whose collaboration allows fewer is rejected",
    )
    allowed_analyses: list[str] = Field(default_factory=lambda: list(ANALYSES))
    max_mpc_seconds: float = Field(default=300.0, gt=0)


class FlowerSection(BaseModel):
    """This station's Flower SuperNode, for federated training."""

    superlink: str | None = Field(
        default=None,
        description="the SuperLink's Fleet API address as host:port; no "
        "SuperNode runs without it",
    )
    root_certificates: Path | None = Field(
        default=None, description="the CA certificate that signed the SuperLink's"
    )
    auth_key: Path | None = Field(
        default=None,
        description="EC private key the SuperNode authenticates with; its public "
        "key must be registered at the SuperLink",
    )
    insecure: bool = Field(
        default=False,
        description="dial the SuperLink without TLS; only for test networks",
    )
    run_timeout_seconds: float = Field(
        default=900.0, gt=0, description="longest a training run may take here"
    )
    stage_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="seconds the ServerApp waits for every station's reply to "
        "one message of an exchange, for runs this station starts; a station "
        "that has not replied by then is named and the run fails",
    )


class DatasetEntry(BaseModel):
    """A dataset this station offers, its schema file and collaborations."""

    name: str
    schema_file: Path = Field(alias="schema")
    collaborations: list[str] = []


class StationConfig(BaseModel):
    """The whole station configuration."""

    station: StationSection
    mpc: MpcSection = MpcSection()
    policy: LocalPolicy = LocalPolicy()
    flower: FlowerSection | None = None
    datasets: list[DatasetEntry] = []

    def token(self) -> str:
        """Return the station's hub token from the environment or token_file."""
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        if token:
            return token
        if self.station.token_file is None:
            raise ConfigError(
                f"no hub token: set {TOKEN_VARIABLE} or token_file in [station]"
            )
        try:
            return self.station.token_file.read_text().strip()
        except OSError as error:
            raise ConfigError(
                f"cannot read token_file {self.station.token_file}: {error.strerror}"
            ) from error

    def schema(self, dataset: str) -> DatasetSchema:
        """Load the declared schema of `dataset`."""
        for entry in self.datasets:
            if entry.name == dataset:
                return load_schema(entry.schema_file)
        raise ConfigError(
            f"dataset {dataset!r} is not declared in the station config; add a "
            "[[datasets]] table with its name and schema file"
        )


def _problems(error: ValidationError) -> str:
    """List each invalid setting and why, leaving out the values.

    The values are left out because a file given by mistake may hold a token.
    """
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "(file)"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path) -> StationConfig:
    """Read a station config; relative paths are relative to the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"station config {path} not found") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"station config {path} is not valid TOML: {error}"
        ) from error
    try:
        config = StationConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(
            f"station config {path} is invalid:\n{_problems(error)}"
        ) from error
    base = path.resolve().parent
    section = config.station
    section.state_dir = base / section.state_dir
    if section.token_file is not None:
        section.token_file = base / section.token_file
    if section.hub_ca_certificate is not None:
        section.hub_ca_certificate = base / section.hub_ca_certificate
        if not section.hub_ca_certificate.is_file():
            raise ConfigError(
                f"station config {path}: hub_ca_certificate "
                f"{section.hub_ca_certificate} does not exist; name the PEM file "
                "of the CA that signed the hub's HTTPS certificate"
            )
    for entry in config.datasets:
        entry.schema_file = base / entry.schema_file
    mpc = config.mpc
    tls_files = {
        "certificate": mpc.certificate,
        "key": mpc.key,
        "ca_certificate": mpc.ca_certificate,
    }
    missing = [name for name, value in tls_files.items() if value is None]
    if missing and len(missing) < len(tls_files):
        raise ConfigError(
            f"station config {path}: [mpc] sets some TLS files but not "
            f"{', '.join(missing)}; set certificate, key and ca_certificate together"
        )
    if missing and not mpc.allow_plaintext:
        raise ConfigError(
            f"station config {path}: MPC links need TLS; set certificate, key and "
            "ca_certificate in [mpc] (create the key and request with `linksight "
            "station csr`), or set allow_plaintext = true on a test network"
        )
    if config.flower is not None:
        _resolve_flower(config.flower, base, path)
    if not missing:
        mpc.certificate = base / mpc.certificate  # type: ignore[operator]
        mpc.key = base / mpc.key  # type: ignore[operator]
        mpc.ca_certificate = base / mpc.ca_certificate  # type: ignore[operator]
    return config


def _resolve_flower(section: FlowerSection, base: Path, path: Path) -> None:
    if section.superlink is None:
        return
    if section.root_certificates is None and not section.insecure:
        raise ConfigError(
            f"station config {path}: [flower] needs root_certificates, the CA "
            "certificate of the SuperLink, or insecure = true on a test network"
        )
    if section.root_certificates is not None:
        section.root_certificates = base / section.root_certificates
    if section.auth_key is not None:
        section.auth_key = base / section.auth_key
