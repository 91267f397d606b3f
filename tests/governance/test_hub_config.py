"""Hub settings from defaults, the environment and explicit values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from governance.config import HubSettings


def test_settings_defaults(tmp_path: Path) -> None:
    settings = HubSettings(state_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path}/hub.db"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8700
    assert settings.task_timeout_seconds == 290.0
    assert settings.approval_deadline_seconds == 7 * 24 * 3600
    assert settings.key_path == tmp_path / "hub_ed25519.pem"


def test_settings_from_environment(tmp_path: Path) -> None:
    environ = {
        "LINKSIGHT_HUB_STATE_DIR": str(tmp_path),
        "LINKSIGHT_HUB_DATABASE_URL": "sqlite:////srv/hub/other.db",
        "LINKSIGHT_HUB_PORT": "9000",
    }
    settings = HubSettings.from_env(environ)
    assert settings.database_url == "sqlite:////srv/hub/other.db"
    assert settings.port == 9000


def test_settings_override_beats_environment(tmp_path: Path) -> None:
    environ = {"LINKSIGHT_HUB_STATE_DIR": str(tmp_path), "LINKSIGHT_HUB_PORT": "9000"}
    settings = HubSettings.from_env(environ, port=9100, host=None)
    assert settings.port == 9100
    assert settings.host == "127.0.0.1"


def test_settings_invalid_port(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="port"):
        HubSettings(state_dir=tmp_path, port=70000)


def test_settings_missing_state_dir() -> None:
    with pytest.raises(ValidationError, match="state_dir"):
        HubSettings.from_env({})


def test_settings_tls_needs_both_files(tmp_path: Path) -> None:
    certificate = tmp_path / "hub.crt"
    certificate.write_text("-----BEGIN CERTIFICATE-----\n")

    with pytest.raises(ValidationError, match="tls_key is not set"):
        HubSettings(state_dir=tmp_path, tls_certificate=certificate)


def test_settings_tls_missing_file_invalid(tmp_path: Path) -> None:
    certificate = tmp_path / "hub.crt"
    certificate.write_text("-----BEGIN CERTIFICATE-----\n")

    with pytest.raises(ValidationError, match="does not exist"):
        HubSettings(
            state_dir=tmp_path,
            tls_certificate=certificate,
            tls_key=tmp_path / "missing.key",
        )


def test_settings_scheme_follows_tls(tmp_path: Path) -> None:
    certificate, key = tmp_path / "hub.crt", tmp_path / "hub.key"
    certificate.write_text("certificate")
    key.write_text("key")

    assert HubSettings(state_dir=tmp_path).scheme == "http"
    assert (
        HubSettings(state_dir=tmp_path, tls_certificate=certificate, tls_key=key).scheme
        == "https"
    )
