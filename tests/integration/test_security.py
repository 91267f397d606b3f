"""Transport and results end to end: HTTPS to the hub, sealed results, clean logs.

One network for the module: a real hub served over HTTPS with a certificate
from the collaboration CA, and three real stations that verify it. The
scientist's Python client trusts that CA, submits, and opens the results
that the stations sealed to its key. Every log line of the hub and the
stations is then searched for secrets and record values.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from linksight.certificates import CertificateAuthority
from linksight.network import LocalNetwork, covid_waiting_lists, lung_data
from linksight.result_encryption import ResultDecryptionError, open_result
from linksight_kernel import Client, ConfigError, HubUnreachableError
from linksight_kernel import ResultDecryptionError as Refused
from station.hub_client import HubError, StationHubClient

QUERY = "SELECT count(*) FROM lung GROUP BY sex"
OVERLAP = "SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-b')"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A hub on HTTPS and three stations with the lung data and waiting lists."""
    network = LocalNetwork(tmp_path_factory.mktemp("secure-network"), hub_tls=True)
    try:
        network.start_hub()
        network.set_up_lung_study()
        network.set_up_waiting_lists()
        network.start_stations()
        network.set_rules(differencing_window=0)
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="module")
def client(network, monkeypatch_module):
    """The scientist's Python client, trusting the collaboration CA."""
    monkeypatch_module.setenv(
        "LINKSIGHT_CA_CERT", str(network.authority.certificate_path)
    )
    monkeypatch_module.setenv("LINKSIGHT_RESULT_KEY", str(network.scientist_key_path))
    with Client(network.hub_url, network.scientist_token, purpose="test") as client:
        yield client


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A monkeypatch whose changes last for the module."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def released(network, client):
    """A query run over HTTPS through the Python client, and its result."""
    request = client.submit(QUERY, collaboration=network.collaboration)
    network.approve_all(request.id)
    final = client.wait(request.id, timeout=180, progress="none")
    return client.outcome(final)


@pytest.fixture(scope="module")
def overlap(network):
    """An overlap query on the waiting lists, read with the network's key."""
    request = network.submit(OVERLAP, "security test", "waiting-lists")
    network.approve_all(request["id"])
    final = network.wait_for(request["id"])
    assert final["state"] == "completed", final
    return network.result(request["id"])


def test_https_query_equals_pandas(network, released):
    counts = lung_data().groupby("sex").size()

    assert network.hub_url.startswith("https://")
    assert released.released
    for sex in (1, 2):
        assert released.df.loc[sex, "count(*)"] == counts[sex]


def test_client_with_other_ca_refused(network, tmp_path):
    other = CertificateAuthority.create(tmp_path / "other-ca", "other")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LINKSIGHT_CA_CERT", str(other.certificate_path))
        with Client(network.hub_url, network.scientist_token) as stranger:
            with pytest.raises(ConfigError) as refused:
                stranger.me()

    assert "did not verify" in str(refused.value)
    assert "LINKSIGHT_CA_CERT" in str(refused.value)


def test_client_with_other_host_name_refused(network, client):
    # The hub's certificate names 127.0.0.1 only.
    other_host = network.hub_url.replace("127.0.0.1", "localhost")

    with Client(other_host, network.scientist_token) as stranger:
        with pytest.raises(ConfigError) as refused:
            stranger.me()

    assert "not issued for the host" in str(refused.value)
    assert "linksight ca sign-hub --host" in str(refused.value)


def test_plain_http_to_https_hub_names_scheme(network, client):
    plain = network.hub_url.replace("https://", "http://")

    with Client(plain, network.scientist_token) as stranger:
        with pytest.raises(HubUnreachableError) as refused:
            stranger.me()

    assert "use https:// if the hub serves HTTPS" in str(refused.value)


def test_station_with_other_ca_refused(network, tmp_path):
    other = CertificateAuthority.create(tmp_path / "other-ca", "other")
    token = (network.stations[0].config_path.parent / "station.token").read_text()
    other_ca = other.certificate_path
    hub = StationHubClient(network.hub_url, token, ca_certificate=other_ca)

    with pytest.raises(HubError) as refused:
        hub.tasks()
    hub.close()

    assert "did not verify" in str(refused.value)
    assert "hub_ca_certificate" in str(refused.value)


def test_hub_database_holds_no_figure(network, released):
    database = network.root / "hub" / "hub.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT result FROM requests WHERE id = ?", (released.request_id,)
        ).fetchall()
        parties = connection.execute(
            "SELECT result FROM request_parties WHERE request_id = ?",
            (released.request_id,),
        ).fetchall()
    stored = json.loads(rows[0][0])
    plain = {k: v for k, v in stored.items() if k != "ciphertexts"}
    reported = " ".join(str(party[0]) for party in parties)

    assert set(stored["ciphertexts"]) == {"station-a", "station-b", "station-c"}
    assert "rows" not in stored
    # A plain document would name its statistic column beside each figure.
    assert "count(*)" not in rows[0][0]
    assert "count(*)" not in reported
    # Each value, not each substring: a hash or a time may hold the digits.
    values = _leaf_values(plain)
    for sex in (1, 2):
        figure = int(released.df.loc[sex, "count(*)"])
        assert figure not in values
        assert str(figure) not in values


def _leaf_values(document) -> list:
    """Return every number and string in a JSON document, keys left out."""
    if isinstance(document, dict):
        return [leaf for value in document.values() for leaf in _leaf_values(value)]
    if isinstance(document, list):
        return [leaf for value in document for leaf in _leaf_values(value)]
    return [document]


def test_scientist_opens_own_result(network, released):
    body = network.call(
        "GET", f"/requests/{released.request_id}/result", network.scientist_token
    )
    other = open_result(body["result"], _key(network.scientist_key_path), 0)

    assert other["sha256"] == released.sha256


def test_other_scientist_key_refused(network, released, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LINKSIGHT_CA_CERT", str(network.authority.certificate_path))
        patch.setenv("LINKSIGHT_RESULT_KEY", str(tmp_path / "other.key"))
        with Client(network.hub_url, network.scientist_token) as other:
            with pytest.raises(Refused) as refused:
                other.result(released.request_id)

    assert "sealed to the key with fingerprint" in str(refused.value)


def test_tampered_ciphertext_refused(network, released):
    body = network.call(
        "GET", f"/requests/{released.request_id}/result", network.scientist_token
    )
    relayed = body["result"]
    sealed = bytearray(base64.b64decode(relayed["ciphertexts"]["station-b"]))
    sealed[60] ^= 1
    relayed["ciphertexts"]["station-b"] = base64.b64encode(bytes(sealed)).decode()

    with pytest.raises(ResultDecryptionError) as refused:
        open_result(relayed, _key(network.scientist_key_path), released.request_id)

    assert "from station station-b failed authentication" in str(refused.value)
    assert "altered" in str(refused.value)


def test_logs_hold_no_secret_or_record(network, released, overlap):
    logs = _all_logs(network.root)
    secrets = _secrets(network)
    identifiers = pd.concat(list(covid_waiting_lists().values()))["subject_id"]

    assert len(logs) > 1000
    assert "completed" in logs
    assert overlap["result"]["status"] == "released"
    for name, secret in secrets.items():
        assert secret not in logs, f"{name} appears in a log"
    for identifier in set(identifiers):
        for quoted in (f"'{identifier}'", f'"{identifier}"'):
            assert quoted not in logs, f"identifier {quoted} appears in a log"


def test_logs_have_no_httpx_poll_lines(network, released):
    logs = _all_logs(network.root)

    assert "HTTP Request:" not in logs


def _key(path: Path):
    from linksight.result_encryption import read_private_key

    return read_private_key(path)


def _all_logs(root: Path) -> str:
    paths = sorted(root.glob("logs/*.log")) + sorted(root.glob("*/state/mpc/*.log"))
    return "\n".join(path.read_text(errors="replace") for path in paths)


def _secrets(network: LocalNetwork) -> dict[str, str]:
    """Every token and private key of the network, as it could be logged."""
    secrets = {
        "admin token": network.admin_token,
        "scientist token": network.scientist_token,
        "scientist result key": network.scientist_key_path.read_text().strip(),
    }
    for station in network.stations:
        folder = station.config_path.parent
        secrets[f"{station.name} token"] = (folder / "station.token").read_text()
        secrets[f"{station.steward} token"] = station.steward_token
        secrets[f"{station.name} MPC key"] = _pem_body(folder / "station.key")
    secrets["hub TLS key"] = _pem_body(network.root / "hub-tls" / "hub.key")
    secrets["hub signing key"] = _pem_body(network.root / "hub" / "hub_ed25519.pem")
    secrets["CA key"] = _pem_body(network.authority.key_path)
    return secrets


def _pem_body(path: Path) -> str:
    """Return the first base64 line of a PEM file, enough to recognise it."""
    lines = path.read_text().splitlines()
    return next(line for line in lines if not line.startswith("-----"))
