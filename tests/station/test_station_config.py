"""Errors of the station's config file."""

from __future__ import annotations

import pytest

from station.config import ConfigError, load_config


def test_invalid_config_error_omits_values(tmp_path):
    # A file given by mistake may hold a token beside the settings.
    path = tmp_path / "client.toml"
    path.write_text(
        "[station]\n"
        'hub_url = "http://127.0.0.1:8700"\n'
        'token = "secret-token-abcdefghijklmnopqrstuvwxyz"\n'
        "name = 7\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    message = str(raised.value)
    assert f"station config {path} is invalid" in message
    assert "station.name" in message
    assert "secret" not in message
    assert "7" not in message.replace(str(path), "")
