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
import os
import shutil
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from linksight.certificates import peer_common_name

logger = logging.getLogger("linksight.station.mpc")


class PartyLost(RuntimeError):
    """A peer's connection closed before the computation finished."""


def _configure_mpyc(config: dict[str, Any]) -> None:
    addresses = [f"{p['host']}:{p['port']}" for p in config["parties"]]
    argv = [sys.argv[0], "-I", str(config["index"]), "--no-barrier"]
    if config.get("tls"):
        argv.append("--ssl")
    for address in addresses:
        argv += ["-P", address]
    sys.argv = argv


def _install_tls_files(config: dict[str, Any]) -> None:
    """Place this station's certificate where MPyC reads it, and enter that folder.

    MPyC 0.11 reads ``.config/party_<i>.crt``, ``.config/party_<i>.key`` and
    ``.config/mpyc_ca.crt`` relative to the working directory.
    """
    tls = config["tls"]
    work_dir = Path(tls["work_dir"])
    folder = work_dir / ".config"
    folder.mkdir(parents=True, exist_ok=True)
    index = config["index"]
    shutil.copyfile(tls["certificate"], folder / f"party_{index}.crt")
    key_copy = folder / f"party_{index}.key"
    key_copy.touch(mode=0o600)
    shutil.copyfile(tls["key"], key_copy)
    shutil.copyfile(tls["ca_certificate"], folder / "mpyc_ca.crt")
    os.chdir(work_dir)


def _relax_hostname_check() -> None:
    # NB: MPyC checks the server's name against "MPyC party <i>", but party
    # numbers change from task to task. The peer's certificate must still
    # come from the collaboration's CA, and _check_peer_identity matches its
    # common name against the station the signed task lists at that number.
    original = ssl.create_default_context

    def create_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = original(*args, **kwargs)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    ssl.create_default_context = create_context  # type: ignore[assignment]


def _check_peer_identity(
    runtime: Any, parties: list[dict[str, Any]], impostors: list[str]
) -> None:
    """Accept a connection from party i only with a certificate naming its station."""
    runtime_class = type(runtime)
    original = runtime_class.set_protocol

    def set_protocol(self: Any, peer_pid: int, protocol: Any) -> None:
        ssl_object = protocol.transport.get_extra_info("ssl_object")
        presented = peer_common_name(ssl_object.getpeercert()) if ssl_object else ""
        expected = parties[peer_pid]["station"]
        if presented != expected:
            impostors.append(
                f"the peer claiming to be party {peer_pid} ({expected}) presented a "
                f"certificate for {presented or 'no station'!r}"
            )
            protocol.transport.close()
            return
        original(self, peer_pid, protocol)

    runtime_class.set_protocol = set_protocol


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
    impostors: list[str] = []
    if config.get("tls"):
        _install_tls_files(config)
        _relax_hostname_check()
    from mpyc.runtime import mpc

    from station.secure_aggregate import SecureOutput, pool_and_release
    from station.secure_join import join_and_release
    from station.secure_logistic import fit_and_release as fit_logistic
    from station.secure_overlap import overlap_and_release
    from station.secure_regression import fit_and_release
    from station.secure_survival import survival_and_release

    _bind_listener(mpc, config["bind_host"])
    lost: set[int] = set()
    _watch_lost_peers(lost)
    parties = config["parties"]
    if config.get("tls"):
        _check_peer_identity(mpc, parties, impostors)
    index = config["index"]
    deadline = float(config["timeout_seconds"])

    def station_names(pids: set[int] | list[int]) -> str:
        return ", ".join(parties[pid]["station"] for pid in sorted(pids))

    async def watchdog() -> None:
        while True:
            if impostors:
                raise PartyLost("refused a connection: " + "; ".join(impostors))
            if lost:
                raise PartyLost(
                    f"lost the connection to station(s) {station_names(lost)} "
                    "during the secure computation"
                )
            await asyncio.sleep(0.2)

    async def compute() -> dict[str, Any]:
        await mpc.start()
        connected_at = time.monotonic()
        if config.get("analysis") == "overlap":
            result = await overlap_and_release(config)
        elif config.get("analysis") == "ols":
            result = await fit_and_release(config)
        elif config.get("analysis") == "logit":
            result = await fit_logistic(config)
        elif config.get("analysis") == "survival":
            result = await survival_and_release(config)
        elif config.get("analysis") == "join":
            result = await join_and_release(config)
        else:
            outputs = [SecureOutput(**o) for o in config["outputs"]]
            result = await pool_and_release(
                config["vector"],
                config["own_vector"],
                outputs,
                config["min_count"],
                config["requester_contributes"],
                config["fraction_bits"],
                config.get("differences", []),
                config.get("dominance"),
                config.get("overlapping_filters"),
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
        if impostors:
            return {
                "ok": False,
                "error": "refused a connection: " + "; ".join(impostors),
            }
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
