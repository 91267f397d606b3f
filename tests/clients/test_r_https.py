"""The R client against a hub served over HTTPS by the collaboration CA.

One network for the module: a real hub on HTTPS and three real stations.
R connects as the scientist and as each steward with the CA's certificate,
runs a query through approval and MPC, and opens the sealed result.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from linksight.certificates import CertificateAuthority
from linksight.network import LocalNetwork, lung_data

QUERY = "SELECT count(*), mean(age) FROM lung GROUP BY sex"

# Runs QUERY through submission, every steward's approval and the stations,
# then writes the result's status and rows as JSON.
RUN_QUERY = """
library(linksight)
arguments <- commandArgs(trailingOnly = TRUE)
scientist <- lks_connect()
request <- lks_submit(scientist, arguments[1], "R over HTTPS test")
for (token in strsplit(Sys.getenv("STEWARD_TOKENS"), ",")[[1]]) {
  lks_approve(lks_connect(token = token), request, "approved by the R HTTPS test")
}
lks_wait(scientist, request, timeout = 180, interval = 0.2, progress = FALSE)
result <- lks_result(scientist, request)
jsonlite::write_json(
  list(status = attr(result, "status"), rows = as.data.frame(result)),
  arguments[2], digits = NA, dataframe = "rows", auto_unbox = TRUE
)
"""

CONNECT_ONLY = "library(linksight); lks_connect()"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A hub on HTTPS and three stations with the lung data."""
    network = LocalNetwork(tmp_path_factory.mktemp("r-https"), hub_tls=True)
    try:
        network.start_hub()
        network.set_up_lung_study()
        network.start_stations()
        network.set_rules(differencing_window=0)
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="module")
def https_environment(network, r_environment) -> dict[str, str]:
    """The scientist's R environment, trusting the collaboration CA."""
    return dict(
        r_environment,
        LINKSIGHT_HUB_URL=network.hub_url,
        LINKSIGHT_TOKEN=network.scientist_token,
        LINKSIGHT_CA_CERT=str(network.authority.certificate_path),
        STEWARD_TOKENS=",".join(station.steward_token for station in network.stations),
    )


def test_r_query_over_https_equals_pandas(
    rscript, network, https_environment, tmp_path
):
    output = tmp_path / "result.json"

    completed = subprocess.run(
        [rscript, "-e", RUN_QUERY, QUERY, str(output)],
        env=https_environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert network.hub_url.startswith("https://")
    result = json.loads(output.read_text())
    assert result["status"] == "released"
    pooled = lung_data().groupby("sex")["age"].agg(["size", "mean"])
    for row in result["rows"]:
        sex = int(row["sex"])
        assert row["count(*)"] == pooled.loc[sex, "size"]
        assert row["mean(age)"] == pytest.approx(pooled.loc[sex, "mean"], rel=1e-6)


def test_r_with_other_ca_names_certificate(rscript, https_environment, tmp_path):
    other = CertificateAuthority.create(tmp_path / "other-ca", "other")
    environment = dict(https_environment, LINKSIGHT_CA_CERT=str(other.certificate_path))

    completed = subprocess.run(
        [rscript, "-e", CONNECT_ONLY],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode != 0
    assert "could not reach the hub at https://" in completed.stderr
    assert "LINKSIGHT_CA_CERT" in completed.stderr
