"""Roles in an overlap task: which parties own lists and which one compares."""

from __future__ import annotations

from nacl.public import PrivateKey

from linksight.query import parse_query
from linksight.result_encryption import encode_key
from linksight.tasks import DisclosureSettings, Party, TaskSpec
from station.overlap_task import plan_roles


def _task(query: str, requester_organisation: str) -> TaskSpec:
    parties = [
        Party(
            station=f"station-{x}",
            organisation=f"Hospital {x.upper()}",
            host="127.0.0.1",
            port=9000 + i,
        )
        for i, x in enumerate("abc")
    ]
    return TaskSpec(
        task_id="t",
        request_id="1",
        collaboration="waiting-lists",
        query=parse_query(query),
        query_text=query,
        parties=parties,
        requester="sam",
        requester_organisation=requester_organisation,
        requester_key=encode_key(PrivateKey.generate().public_key),
        disclosure=DisclosureSettings(),
        issued_at="2026-12-04T00:00:00+00:00",
    )


def test_every_station_owns_a_list():
    plan = plan_roles(_task("SELECT overlap(id) FROM covid", "Research Institute"))
    assert plan.owners == [0, 1, 2]
    assert plan.comparer == 0


def test_station_without_list_compares():
    query = "SELECT overlap(id) FROM covid AT ('station-c', 'station-a')"
    plan = plan_roles(_task(query, "Research Institute"))
    assert plan.owners == [0, 2]
    assert plan.comparer == 1


def test_requester_station_never_compares():
    query = "SELECT overlap(id) FROM covid AT ('station-a', 'station-c')"
    plan = plan_roles(_task(query, "Hospital B"))
    assert plan.comparer == 0
    plan = plan_roles(_task("SELECT overlap(id) FROM covid", "Hospital A"))
    assert plan.comparer == 1
