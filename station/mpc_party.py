"""Run one station's MPyC party for one task, as its own process.

Usage: ``python -m station.mpc_party INPUT.json OUTPUT.json``

The station daemon writes INPUT.json (parties, this party's index, its
aggregate vectors, the outputs to release, the disclosure settings and a
deadline) and reads OUTPUT.json when the process exits. Exit status 0 means
OUTPUT.json holds ``{"ok": true, ...}``; otherwise it contains
``{"ok": false, "error": ...}`` naming the stations that were missing.

MPyC 0.11 reads its options from sys.argv when it is imported, listens on
every network interface whatever host is configured, and waits forever for
a party that never connects or has died. This module therefore sets argv
before importing MPyC, binds the listening socket to the configured address,
watches for lost connections, and puts a deadline on the whole run.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("linksight.station.mpc")


class PartyLost(RuntimeError):
    """A peer's connection closed before the computation finished."""


def _configure_mpyc(config: dict[str, Any]) -> None:
    addresses = [f"{p['host']}:{p['port']}" for p in config["parties"]]
    argv = [sys.argv[0], "-I", str(config["index"]), "--no-barrier"]
    for address in addresses:
        argv += ["-P", address]
    sys.argv = argv


def _bind_listener(runtime: Any, host: str) -> None:
    # NB: MPyC calls loop.create_server(factory, port=...) with no host, which
    # listens on all interfaces; fix the host on this party's loop instance.
    loop = runtime._loop
    original = loop.create_server
    loop.create_server = functools.partial(original, host=host)


def _watch_lost_peers(lost: set[int]) -> None:
    from mpyc import asyncoro

    original = asyncoro.MessageExchanger.connection_lost

    def connection_lost(self: Any, exc: Exception | None) -> None:
        if self.peer_pid is not None and not getattr(self.runtime, "_closing", False):
            lost.add(self.peer_pid)
        try:
            original(self, exc)
        except Exception:  # MPyC re-raises the socket error inside a callback
            logger.debug("connection to party %s lost", self.peer_pid)

    asyncoro.MessageExchanger.connection_lost = connection_lost  # type: ignore[method-assign]


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Run the party described by `config` and return the output record."""
    _configure_mpyc(config)
    from mpyc.runtime import mpc

    from station.secure_aggregate import SecureOutput, pool_and_release

    _bind_listener(mpc, config["bind_host"])
    lost: set[int] = set()
    _watch_lost_peers(lost)
    parties = config["parties"]
    index = config["index"]
    deadline = float(config["timeout_seconds"])

    def station_names(pids: set[int] | list[int]) -> str:
        return ", ".join(parties[pid]["station"] for pid in sorted(pids))

    async def watchdog() -> None:
        while True:
            if lost:
                raise PartyLost(
                    f"lost the connection to station(s) {station_names(lost)} "
                    "during the secure computation"
                )
            await asyncio.sleep(0.2)

    async def compute() -> dict[str, Any]:
        await mpc.start()
        connected_at = time.monotonic()
        outputs = [SecureOutput(**o) for o in config["outputs"]]
        result = await pool_and_release(
            config["vector"],
            config["own_vector"],
            outputs,
            config["min_count"],
            config["requester_contributes"],
            config["fraction_bits"],
        )
        mpc._closing = True  # type: ignore[attr-defined]
        await mpc.shutdown()
        result["mpc_seconds"] = round(time.monotonic() - connected_at, 3)
        return result

    async def main() -> dict[str, Any]:
        compute_task = asyncio.ensure_future(compute())
        watch_task = asyncio.ensure_future(watchdog())
        done, _ = await asyncio.wait(
            {compute_task, watch_task},
            timeout=deadline,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in (compute_task, watch_task):
            if task not in done:
                task.cancel()
        if compute_task in done:
            return compute_task.result()
        if watch_task in done:
            watch_task.result()  # raises PartyLost
        missing = [
            peer.pid
            for peer in mpc.parties
            if peer.pid != index and peer.protocol is None
        ]
        if missing:
            raise TimeoutError(
                f"station(s) {station_names(missing)} did not join the secure "
                f"computation within {deadline:.0f} s"
            )
        raise TimeoutError(
            f"the secure computation did not finish within {deadline:.0f} s"
        )

    started = time.monotonic()
    try:
        result = mpc.run(main())
    except (PartyLost, TimeoutError) as error:
        return {"ok": False, "error": str(error)}
    except OSError as error:
        me = parties[index]
        return {
            "ok": False,
            "error": f"station {me['station']} could not use its MPC address "
            f"{config['bind_host']}:{me['port']}: {error.strerror or error}",
        }
    except RuntimeError as error:
        # MPyC stops the event loop when a callback fails, as a send to a
        # closed peer does; the loop then ends with this RuntimeError.
        if lost:
            return {
                "ok": False,
                "error": f"lost the connection to station(s) {station_names(lost)} "
                "during the secure computation",
            }
        return {"ok": False, "error": f"the secure computation failed: {error}"}
    result["ok"] = True
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main() -> int:
    """Read the input file, run the party, write the output file."""
    if len(sys.argv) != 3:
        print(
            "usage: python -m station.mpc_party INPUT.json OUTPUT.json", file=sys.stderr
        )
        return 2
    input_path, output_path = Path(sys.argv[1]), Path(sys.argv[2])
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = json.loads(input_path.read_text())
    result = run(config)
    output_path.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
