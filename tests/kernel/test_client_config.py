"""Where the client finds its hub URL and token, and what it refuses."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from linksight_kernel.client import Client
from linksight_kernel.config import (
    ENV_CA_CERT,
    ENV_CONFIG,
    ENV_HUB_URL,
    ENV_RESULT_KEY,
    ENV_TOKEN,
    read_config,
    resolve_connection,
    write_config,
)
from linksight_kernel.errors import ConfigError


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    for name in (ENV_CONFIG, ENV_HUB_URL, ENV_TOKEN):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def config_file(tmp_path, clean_environment):
    path = tmp_path / "client.toml"
    write_config(
        path,
        "http://127.0.0.1:8700",
        "file-token",
        collaboration="lung-study",
        profiles={"steward-a": "steward-token"},
    )
    return path


def test_written_config_is_private(config_file):
    assert config_file.stat().st_mode & 0o777 == 0o600
    config = read_config(config_file)
    assert config.hub_url == "http://127.0.0.1:8700"
    assert config.token == "file-token"
    assert config.profiles == {"steward-a": {"token": "steward-token"}}


def test_argument_wins_over_environment(config_file, monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, "env-token")
    connection = resolve_connection("http://h:1", "arg-token", path=config_file)
    assert connection.hub_url == "http://h:1"
    assert connection.token == "arg-token"


def test_environment_wins_over_file(config_file, monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, "env-token")
    connection = resolve_connection(path=config_file)
    assert connection.token == "env-token"
    assert connection.hub_url == "http://127.0.0.1:8700"
    assert connection.collaboration == "lung-study"


def test_profile_token_wins_over_environment(config_file, monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, "env-token")
    connection = resolve_connection(profile="steward-a", path=config_file)
    assert connection.token == "steward-token"


def test_config_found_through_variable(config_file, monkeypatch):
    monkeypatch.setenv(ENV_CONFIG, str(config_file))
    assert resolve_connection().token == "file-token"


def test_token_never_in_repr(config_file):
    connection = resolve_connection(path=config_file)
    assert "file-token" not in repr(connection)
    assert "file-token" not in repr(read_config(config_file))


def test_missing_url_message(clean_environment):
    with pytest.raises(ConfigError) as caught:
        resolve_connection(token="t")
    assert str(caught.value) == (
        "no hub URL: pass it (Client('http://HOST:PORT') or %linksight connect "
        "URL), set LINKSIGHT_HUB_URL, or write hub_url in "
        "~/.config/linksight/client.toml"
    )


def test_missing_token_message(clean_environment):
    with pytest.raises(ConfigError) as caught:
        resolve_connection("http://h:1")
    assert str(caught.value) == (
        "no token for http://h:1: pass token=..., set LINKSIGHT_TOKEN, or write "
        "token in ~/.config/linksight/client.toml; the hub admin gives you a token"
    )


def test_readable_config_rejected(config_file):
    config_file.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        read_config(config_file)
    assert str(caught.value) == (
        f"config file {config_file} has mode -rw-r--r--, so other users can read "
        f"its tokens; run: chmod 600 {config_file}"
    )


def test_unknown_profile_lists_profiles(config_file):
    with pytest.raises(ConfigError) as caught:
        resolve_connection(profile="steward-z", path=config_file)
    assert str(caught.value) == (
        f"profile 'steward-z' not found in config file {config_file}; "
        "profiles: steward-a"
    )


def test_missing_config_variable_target(clean_environment, monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv(ENV_CONFIG, str(missing))
    with pytest.raises(ConfigError) as caught:
        resolve_connection()
    assert str(caught.value) == (
        f"LINKSIGHT_CONFIG names {missing}, which does not exist; correct the "
        "variable or unset it"
    )


def test_result_key_beside_config_file(config_file, monkeypatch):
    monkeypatch.delenv(ENV_RESULT_KEY, raising=False)

    connection = resolve_connection(path=config_file)

    assert connection.result_key_path == config_file.parent / "result.key"


def test_result_key_from_environment(config_file, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_RESULT_KEY, str(tmp_path / "elsewhere.key"))

    connection = resolve_connection(path=config_file)

    assert connection.result_key_path == tmp_path / "elsewhere.key"


def test_result_key_without_config_in_home(clean_environment, monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_RESULT_KEY, raising=False)

    connection = resolve_connection("http://127.0.0.1:8700", "token")

    expected = tmp_path / "home" / ".config" / "linksight" / "result.key"
    assert connection.result_key_path == expected


def test_missing_ca_certificate_invalid(config_file, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CA_CERT, str(tmp_path / "missing-ca.crt"))

    with pytest.raises(ConfigError) as error:
        resolve_connection(path=config_file)

    assert "missing-ca.crt" in str(error.value)
    assert "does not exist" in str(error.value)


def test_ca_certificate_from_config_file(tmp_path, clean_environment, monkeypatch):
    monkeypatch.delenv(ENV_CA_CERT, raising=False)
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "client.toml"
    write_config(path, "https://127.0.0.1:8700", "token", ca_certificate=Path("ca.crt"))

    connection = resolve_connection(path=path)

    assert connection.ca_certificate == tmp_path / "ca.crt"


def test_ca_file_without_certificate_invalid(config_file, monkeypatch, tmp_path):
    not_a_certificate = tmp_path / "hub.csr"
    not_a_certificate.write_text("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")
    monkeypatch.setenv(ENV_CA_CERT, str(not_a_certificate))

    with pytest.raises(ConfigError) as error:
        Client(config_path=config_file)

    assert f"{not_a_certificate} contains no PEM certificate" in str(error.value)
    assert "ca.crt" in str(error.value)


def test_config_variable_naming_folder(clean_environment, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path))

    with pytest.raises(ConfigError) as error:
        resolve_connection()

    assert f"names {tmp_path}, which is a folder" in str(error.value)


def test_unknown_setting_named(clean_environment, tmp_path):
    path = tmp_path / "client.toml"
    path.write_text('hub_url = "http://127.0.0.1:8700"\ntokn = "abc"\n')
    path.chmod(0o600)

    with pytest.raises(ConfigError) as error:
        resolve_connection(path=path)

    assert "unknown setting(s) tokn" in str(error.value)


def test_missing_token_names_file_in_use(clean_environment, tmp_path):
    path = tmp_path / "client.toml"
    path.write_text('hub_url = "http://127.0.0.1:8700"\n')
    path.chmod(0o600)

    with pytest.raises(ConfigError) as error:
        resolve_connection(path=path)

    assert f"write token in {path}" in str(error.value)


@pytest.mark.parametrize("url", ["notaurl", "ftp://127.0.0.1:8700", "http://"])
def test_invalid_hub_url_rejected(clean_environment, url):
    with pytest.raises(ConfigError) as error:
        resolve_connection(url, "token")

    assert f"invalid hub URL {url!r}" in str(error.value)


class _WebPage(BaseHTTPRequestHandler):
    """A request handler that returns HTML, as a web server that is not a hub."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        body = b"<html><body><h1>404: Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's name
        pass


@pytest.fixture
def web_server():
    """A web server on 127.0.0.1 that serves HTML pages only."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_web_page_instead_of_hub_named(clean_environment, web_server):
    with Client(web_server, "some-token") as client:
        with pytest.raises(ConfigError) as refused:
            client.me()

    message = str(refused.value)
    assert f"the server at {web_server} is not a Linksight hub" in message
    assert "HTTP 404 and a text/html page instead of JSON" in message
    assert ENV_HUB_URL in message
    assert "<html>" not in message
