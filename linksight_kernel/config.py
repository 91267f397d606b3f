"""Connection settings: which hub to call and with which token.

Each setting comes from the first of these that has it:

1. an argument (``Client(hub_url, token)``, ``%linksight connect URL``);
2. the environment variables ``LINKSIGHT_HUB_URL`` and ``LINKSIGHT_TOKEN``;
3. the config file named by ``LINKSIGHT_CONFIG``, or else
   ``~/.config/linksight/client.toml`` if it exists.

The config file is TOML. Profiles hold other users' tokens on the same hub,
such as a steward's, and are chosen by name::

    hub_url = "http://127.0.0.1:8700"
    token = "..."
    collaboration = "lung-study"    # optional default collaboration

    [profiles.steward-a]
    token = "..."

A profile's token wins over ``LINKSIGHT_TOKEN``. Because the file contains
tokens, it must not be readable by other users (mode 0600). A token is
never printed, logged or shown in a repr.

Two more settings, each from ``LINKSIGHT_RESULT_KEY`` and
``LINKSIGHT_CA_CERT`` or the file's ``result_key`` and ``ca_certificate``
(relative paths are relative to the file):

- the result key file: your X25519 private key, which opens the results
  the stations seal to you. By default ``result.key`` in the config file's
  folder, or ``~/.config/linksight/result.key`` without a config file. The
  client creates it (mode 0600) on first use; R's client uses the same file.
- the CA certificate (PEM) that a hub served over HTTPS must present a
  certificate from; by default the system's trusted CAs.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from linksight_kernel.errors import ConfigError

ENV_HUB_URL = "LINKSIGHT_HUB_URL"
ENV_TOKEN = "LINKSIGHT_TOKEN"
ENV_CONFIG = "LINKSIGHT_CONFIG"
ENV_RESULT_KEY = "LINKSIGHT_RESULT_KEY"
ENV_CA_CERT = "LINKSIGHT_CA_CERT"
DEFAULT_CONFIG_PATH = Path("~/.config/linksight/client.toml")
RESULT_KEY_NAME = "result.key"


@dataclass(frozen=True)
class Connection:
    """A hub URL, a token, and where each came from (for messages)."""

    hub_url: str
    token: str = field(repr=False)
    profile: str | None = None
    collaboration: str | None = None
    source: str = "argument"
    config_path: Path | None = None
    result_key_path: Path = DEFAULT_CONFIG_PATH.parent / RESULT_KEY_NAME
    ca_certificate: Path | None = None


@dataclass(frozen=True)
class ConfigFile:
    """The parsed contents of a client config file."""

    path: Path
    hub_url: str | None = None
    token: str | None = field(default=None, repr=False)
    collaboration: str | None = None
    profiles: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    result_key: str | None = None
    ca_certificate: str | None = None


def config_path() -> Path | None:
    """Return the config file to read: LINKSIGHT_CONFIG, or the default if present.

    Raises
    ------
    ConfigError
        If LINKSIGHT_CONFIG names a file that does not exist.
    """
    named = os.environ.get(ENV_CONFIG)
    if named:
        path = Path(named).expanduser()
        if path.is_dir():
            raise ConfigError(
                f"{ENV_CONFIG} names {path}, which is a folder; name the config "
                "file in it, such as client.toml"
            )
        if not path.is_file():
            raise ConfigError(
                f"{ENV_CONFIG} names {path}, which does not exist; correct the "
                f"variable or unset it"
            )
        return path
    default = DEFAULT_CONFIG_PATH.expanduser()
    return default if default.is_file() else None


# The top-level settings of a client config file, besides [profiles].
CONFIG_SETTINGS = ("hub_url", "token", "collaboration", "result_key", "ca_certificate")


def read_config(path: Path) -> ConfigFile:
    """Read and check a client config file.

    Raises
    ------
    ConfigError
        If other users may read the file, it is not valid TOML, or a field
        has the wrong type.
    """
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"config file {path} has mode {stat.filemode(mode)}, so other users "
            f"can read its tokens; run: chmod 600 {path}"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - set(CONFIG_SETTINGS) - {"profiles"})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; the "
            f"settings are {', '.join(CONFIG_SETTINGS)} and [profiles]"
        )
    for key in CONFIG_SETTINGS:
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"config file {path}: {key} must be a string")
    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"config file {path}: [profiles] must be a table")
    for name, profile in profiles.items():
        if not isinstance(profile, dict) or not isinstance(profile.get("token"), str):
            raise ConfigError(
                f"config file {path}: profile {name!r} needs a token, as in "
                f'[profiles.{name}] token = "..."'
            )
    return ConfigFile(
        path=path,
        hub_url=raw.get("hub_url"),
        token=raw.get("token"),
        collaboration=raw.get("collaboration"),
        profiles=profiles,
        result_key=raw.get("result_key"),
        ca_certificate=raw.get("ca_certificate"),
    )


def resolve_connection(
    hub_url: str | None = None,
    token: str | None = None,
    profile: str | None = None,
    path: Path | None = None,
) -> Connection:
    """Find the hub URL and token from the arguments, environment and config file.

    Parameters
    ----------
    hub_url, token
        Explicit settings; they win over everything else.
    profile
        A profile of the config file whose token (and hub URL, if it has
        one) to use.
    path
        The config file; by default LINKSIGHT_CONFIG or the default path.

    Raises
    ------
    ConfigError
        If no hub URL or no token is found, or the profile does not exist.
    """
    path = path or config_path()
    config = read_config(path) if path is not None else None
    sources = []

    chosen: dict[str, str] = {}
    if profile is not None:
        if config is None or profile not in config.profiles:
            known = ", ".join(sorted(config.profiles)) if config else ""
            where = f"config file {path}" if path else "no config file"
            raise ConfigError(
                f"profile {profile!r} not found in {where}; "
                + (f"profiles: {known}" if known else "add [profiles.NAME] to it")
            )
        chosen = config.profiles[profile]

    url = (
        hub_url
        or os.environ.get(ENV_HUB_URL)
        or chosen.get("hub_url")
        or (config.hub_url if config else None)
    )
    secret = (
        token
        or chosen.get("token")
        or os.environ.get(ENV_TOKEN)
        or (config.token if config else None)
    )
    if not url:
        raise ConfigError(
            "no hub URL: pass it (Client('http://HOST:PORT') or %linksight connect "
            f"URL), set {ENV_HUB_URL}, or write hub_url in {DEFAULT_CONFIG_PATH}"
        )
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        raise ConfigError(
            f"invalid hub URL {url!r}: write it as http://HOST:PORT or "
            "https://HOST:PORT, such as http://127.0.0.1:8700"
        )
    if not secret:
        config_file = path if config is not None else DEFAULT_CONFIG_PATH
        raise ConfigError(
            f"no token for {url}: pass token=..., set {ENV_TOKEN}, or write "
            f"token in {config_file}; the hub admin gives you a token"
        )
    if hub_url or token:
        sources.append("arguments")
    if os.environ.get(ENV_HUB_URL) or os.environ.get(ENV_TOKEN):
        sources.append("environment")
    if config is not None:
        sources.append(f"config file {path}")
    return Connection(
        hub_url=url.rstrip("/"),
        token=secret,
        profile=profile,
        collaboration=config.collaboration if config else None,
        source=", ".join(sources),
        config_path=path,
        result_key_path=_result_key_path(config),
        ca_certificate=_ca_certificate(config),
    )


def _relative_to(config: ConfigFile | None, value: str) -> Path:
    path = Path(value).expanduser()
    if config is not None and not path.is_absolute():
        return config.path.parent / path
    return path


def _result_key_path(config: ConfigFile | None) -> Path:
    named = os.environ.get(ENV_RESULT_KEY)
    if named:
        return Path(named).expanduser()
    if config is not None and config.result_key:
        return _relative_to(config, config.result_key)
    if config is not None:
        return config.path.parent / RESULT_KEY_NAME
    return (DEFAULT_CONFIG_PATH.parent / RESULT_KEY_NAME).expanduser()


def _ca_certificate(config: ConfigFile | None) -> Path | None:
    named = os.environ.get(ENV_CA_CERT)
    if named:
        path = Path(named).expanduser()
        source = ENV_CA_CERT
    elif config is not None and config.ca_certificate:
        path = _relative_to(config, config.ca_certificate)
        source = f"ca_certificate in {config.path}"
    else:
        return None
    if not path.is_file():
        raise ConfigError(
            f"the hub's CA certificate {path} (from {source}) does not exist; "
            "name the PEM file of the CA that signed the hub's certificate"
        )
    return path


def write_config(
    path: Path,
    hub_url: str,
    token: str,
    *,
    collaboration: str | None = None,
    profiles: dict[str, str] | None = None,
    ca_certificate: Path | None = None,
) -> None:
    """Write a client config file readable by its owner only (mode 0600).

    `profiles` maps profile names to their tokens on the same hub.
    """

    def quoted(value: str) -> str:
        # A JSON string of printable text is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=True)

    lines = [
        "# Linksight client settings; contains tokens, keep it private.",
        f"hub_url = {quoted(hub_url)}",
        f"token = {quoted(token)}",
    ]
    if collaboration:
        lines.append(f"collaboration = {quoted(collaboration)}")
    if ca_certificate is not None:
        lines.append(f"ca_certificate = {quoted(str(ca_certificate))}")
    for name, profile_token in (profiles or {}).items():
        lines += ["", f"[profiles.{quoted(name)}]", f"token = {quoted(profile_token)}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)
