"""The rule max_dp_epsilon at the hub: training only under differential privacy."""

from __future__ import annotations

from hub_network import COLLABORATION, Network

RULES = f"/collaborations/{COLLABORATION}/rules"
TRAIN = "SELECT train(logistic, sex ~ age, rounds = 2{}) FROM lung"


def _submit(network: Network, settings: str) -> dict:
    return network.ok(
        "POST",
        "/requests",
        network.scientist,
        json={
            "collaboration": COLLABORATION,
            "query": TRAIN.format(settings),
            "purpose": "private model",
        },
    )


def test_max_dp_epsilon_checked_at_submission(network: Network) -> None:
    before = _submit(network, "")
    network.ok(
        "POST",
        RULES,
        network.stewards["Hospital A"],
        json={"changes": {"max_dp_epsilon": 2}, "reason": "private models only"},
    )
    for hospital in ("Hospital B", "Hospital C"):
        network.ok("POST", f"{RULES}/2/accept", network.stewards[hospital])
    without = _submit(network, "")
    above = _submit(network, ", dp_epsilon = 5")
    within = _submit(network, ", dp_epsilon = 1.5")

    assert before["state"] != "rejected"
    assert without["state"] == "rejected"
    assert without["rejection"]["rule"] == "max_dp_epsilon"
    assert "add dp_epsilon = 2" in without["rejection"]["message"]
    assert above["state"] == "rejected"
    assert above["rejection"]["rule"] == "max_dp_epsilon"
    assert "limit of 2" in above["rejection"]["message"]
    assert within["state"] != "rejected"
