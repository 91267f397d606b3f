"""Run the secure 2^-|t| and logistic function as one real MPyC party.

Usage: ``python sigmoid_party.py INPUT.json OUTPUT.json``. INPUT.json contains
the parties and this party's index as for ``station.mpc_party``, the
fraction bits, the public bound, the number of values and, at party 0 only,
the values. OUTPUT.json receives the opened results and their time, or the
message of the ValueError that rejected the fixed-point type or the bound.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from station.mpc_party import _bind_listener, _configure_mpyc


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    output_path = Path(sys.argv[2])
    _configure_mpyc(config)
    from mpyc.runtime import mpc

    from station.secure_sigmoid import exp2_negative_abs, sigmoid2

    _bind_listener(mpc, "127.0.0.1")
    fraction_bits = int(config["fraction_bits"])
    secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)
    shape = (int(config["count"]),)

    async def compute() -> dict[str, Any]:
        await mpc.start()
        values = config.get("values")
        if values is None:
            mine = secfxp.array(None, shape=shape, integral=False)
        else:
            mine = secfxp.array(np.array(values, dtype=float), integral=False)
        t = mpc.input(mine, senders=0)
        t.integral = False
        started = time.monotonic()
        try:
            power, negative = exp2_negative_abs(t, config["bound"])
        except ValueError as error:
            await mpc.shutdown()
            return {"error": str(error)}
        logistic = sigmoid2(t, config["bound"])
        opened = await mpc.output(mpc.np_stack([power, negative, logistic]))
        seconds = time.monotonic() - started
        await mpc.shutdown()
        return {
            "power": [float(v) for v in opened[0]],
            "negative": [float(v) for v in opened[1]],
            "sigmoid": [float(v) for v in opened[2]],
            "seconds": seconds,
        }

    output_path.write_text(json.dumps(mpc.run(compute())))


if __name__ == "__main__":
    main()
