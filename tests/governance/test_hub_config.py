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
    assert settings.task_timeout_seconds == 120.0
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
