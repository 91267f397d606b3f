"""The text progress of a followed request when stderr is a log file."""

from __future__ import annotations

from linksight_kernel.progress import TextProgress
from linksight_kernel.requests import Request

TIME = "2026-12-04T12:00:00+00:00"


def _request(state: str, statuses: list[str]) -> Request:
    return Request.from_json(
        {
            "id": 7,
            "collaboration": "lung-study",
            "dataset": "lung",
            "query": "SELECT count(*) FROM lung",
            "purpose": "test",
            "submitter": "sam",
            "state": state,
            "touched_organisations": ["Hospital A", "Hospital B"],
            "parties": [
                {"station": f"station-{letter}", "organisation": "x", "status": s}
                for letter, s in zip("ab"[: len(statuses)], statuses, strict=True)
            ],
            "created_at": TIME,
            "updated_at": TIME,
            "expires_at": TIME,
        }
    )


def test_progress_prints_each_change_once(capsys):
    waiting = _request("awaiting_approval", [])
    running = _request("running", ["started", "completed"])
    done = _request("completed", ["completed", "completed"])

    progress = TextProgress(waiting)
    progress.update(waiting)
    progress.update(running)
    progress.update(running)
    progress.close(done)

    output = capsys.readouterr().err
    lines = output.splitlines()
    assert lines[0] == "request 7: awaiting approval: 0 of 2 organisations approved"
    assert lines[1] == (
        "request 7: running: 1 of 2 stations finished; "
        "stations: station-a started, station-b completed"
    )
    assert lines[2].startswith("request 7: completed after ")
    assert len(lines) == 3
    assert "\r" not in output


def test_progress_of_ended_request_has_no_time(capsys):
    done = _request("completed", ["completed", "completed"])

    progress = TextProgress(done)
    progress.close(done)

    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "request 7: completed; computed by station-a, station-b",
    ]


def test_progress_shows_training_round(capsys):
    body = {
        "id": 8,
        "collaboration": "heart-study",
        "dataset": "heart",
        "query": "SELECT train(logistic, (num > 0) ~ age, rounds = 4) FROM heart",
        "purpose": "test",
        "submitter": "sam",
        "state": "running",
        "touched_organisations": ["Hospital A"],
        "parties": [
            {
                "station": "cleveland",
                "organisation": "x",
                "status": "started",
                "progress": {"round": 3, "rounds": 4},
            },
            {
                "station": "hungary",
                "organisation": "x",
                "status": "started",
                "progress": {"round": 5, "rounds": 4},
            },
        ],
        "created_at": TIME,
        "updated_at": TIME,
        "expires_at": TIME,
    }

    TextProgress(Request.from_json(body))

    line = capsys.readouterr().err.splitlines()[0]
    assert line.endswith(
        "stations: cleveland started (round 3 of 4), "
        "hungary started (evaluating after 4 rounds)"
    )
