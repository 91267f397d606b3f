"""MPC over TLS with certificates from the collaboration's CA."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpc_parties import loopback_parties, run_parties

from linksight.certificates import (
    CertificateAuthority,
    CertificateError,
    create_station_key,
)

OUTPUTS = [
    {
        "label": "count(*)",
        "func": "count",
        "cell": 0,
        "n_slot": 0,
        "sum_slot": None,
        "square_slot": None,
    },
]


def _issue(ca: CertificateAuthority, directory: Path, station: str) -> dict[str, str]:
    key_path = directory / f"{station}.key"
    request = create_station_key(key_path, station)
    certificate_path = directory / f"{station}.crt"
    certificate_path.write_bytes(ca.sign(request, station))
    return {"key": str(key_path), "certificate": str(certificate_path)}


def _run(tmp_path: Path, credentials: list[dict[str, str]], ca_path: Path, timeout=20):
    parties = loopback_parties(3)
    configs = []
    for index in range(3):
        work_dir = tmp_path / f"party{index}"
        work_dir.mkdir()
        configs.append(
            {
                "parties": parties,
                "index": index,
                "bind_host": "127.0.0.1",
                "timeout_seconds": timeout,
                "vector": [10.0 + index],
                "own_vector": [0.0],
                "outputs": OUTPUTS,
                "min_count": 10,
                "requester_contributes": False,
                "fraction_bits": 48,
                "tls": {
                    **credentials[index],
                    "ca_certificate": str(ca_path),
                    "work_dir": str(work_dir),
                },
            }
        )
    results = run_parties(configs, tmp_path, timeout=timeout + 30)
    return [output for _, output in results]


@pytest.fixture()
def authority(tmp_path):
    return CertificateAuthority.create(tmp_path / "ca", "lung-study")


def test_tls_parties_with_own_certificates(tmp_path, authority):
    credentials = [_issue(authority, tmp_path, f"station-{i}") for i in range(3)]
    outputs = _run(tmp_path, credentials, authority.certificate_path)
    for output in outputs:
        assert output["ok"] is True, output
        assert output["values"][0]["n"] == 33


def test_tls_rejects_certificate_of_other_station(tmp_path, authority):
    # Station 2 presents station 0's valid certificate: an impersonation.
    credentials = [_issue(authority, tmp_path, f"station-{i}") for i in range(2)]
    credentials.append(credentials[0])
    outputs = _run(tmp_path, credentials, authority.certificate_path, timeout=10)
    messages = [o.get("error", "") for o in outputs]
    assert not any(o["ok"] for o in outputs)
    assert any("party 2 (station-2)" in m and "'station-0'" in m for m in messages)


def test_tls_rejects_certificate_of_other_ca(tmp_path, authority):
    other = CertificateAuthority.create(tmp_path / "other-ca", "elsewhere")
    credentials = [_issue(authority, tmp_path, f"station-{i}") for i in range(2)]
    credentials.append(_issue(other, tmp_path / "other", "station-2"))
    outputs = _run(tmp_path, credentials, authority.certificate_path, timeout=10)
    # The first party to time out names station-2; a party still waiting may
    # then see that one leave and name it instead.
    assert not any(o["ok"] for o in outputs)
    assert any("station-2" in o["error"] for o in outputs)


def test_ca_refuses_request_for_other_station(tmp_path, authority):
    request = create_station_key(tmp_path / "a.key", "station-a")
    with pytest.raises(
        CertificateError, match="names station 'station-a', not 'station-b'"
    ):
        authority.sign(request, "station-b")


def test_station_key_is_private(tmp_path):
    create_station_key(tmp_path / "a.key", "station-a")
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600
