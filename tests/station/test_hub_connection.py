"""The station's connection to an HTTPS hub: its CA setting and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.config import ConfigError, load_config

CONFIG = """\
[station]
name = "station-a"
organisation = "Hospital A"
state_dir = "state"
hub_url = "https://127.0.0.1:8700"
hub_public_key = "unused"
token_file = "station.token"
hub_ca_certificate = "{ca}"

[mpc]
allow_plaintext = true
"""


def _write(tmp_path: Path, ca: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(CONFIG.format(ca=ca))
    return path


def test_hub_ca_resolved_beside_config(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")

    config = load_config(_write(tmp_path, "ca.crt"))

    assert config.station.hub_ca_certificate == tmp_path / "ca.crt"


def test_hub_ca_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, "missing.crt"))

    assert "hub_ca_certificate" in str(error.value)
    assert "does not exist" in str(error.value)
    assert "missing.crt" in str(error.value)
