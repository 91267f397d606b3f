"""Count persons across the stations' lists without revealing who they are.

This is the MPC party's side of an ``overlap(id)`` query. The m parties are
stations, numbered 0..m-1 in task order, and include the owners of the
lists to compare. A party that owns no list in this query still blinds and
may compare. Identifiers arrive normalised and without duplicates per cell.

Protocol:

1. Size check (MPC): every owner secret-shares its number of valid
   identifiers; the parties open one bit per owner, whether it reaches the
   minimum count. A short list stops the run here, before any blinding.
2. Blinding ring: every party draws a fresh secret scalar k_p for this run.
   Each owner hashes its identifiers into ristretto255, once per cell, adds
   a random number (0 to ``padding_max``) of random group elements per cell
   as padding, multiplies by its scalar and shuffles. Then the lists move
   one step around the ring p -> p+1, m - 1 times; at every step the holder
   multiplies by its own scalar and shuffles. A list then holds
   k_0 * ... * k_{m-1} * H(cell, id) for each identifier, the same value at
   every station, and nobody knows the product of the scalars.
3. Comparison: the holders send the fully blinded lists to one comparer
   party, which counts, per cell, how many distinct values lie in each
   combination of lists (each region of the Venn diagram).
4. Counting and release (MPC): the comparer secret-shares the region counts,
   every owner its padding counts and its invalid-identifier counts. The
   parties compute every figure, open one pass/fail bit per figure and per
   Venn region (at least ``min_count``) and, if all pass, one bit per earlier
   answer that a figure of this one differs from by 1 to ``min_count - 1``.
   Only then are the figures opened.

Who learns what (semi-honest parties, no two colluding):

* Every party learns the number of elements of each list per cell, padded,
  and nothing else from steps 2 and 3, because a value it sees is blinded by
  at least one scalar it does not hold and was shuffled by another party.
* The comparer also learns, per cell, the number of persons on each
  combination of two or more lists. It cannot link them to any identifier,
  and the padding hides the exact number on one list only.
* All parties learn the opened bits and, if released, the figures.

The secret scalars live only in this process's memory and are overwritten
when the run ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import resource
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from station import ristretto

logger = logging.getLogger("linksight.station.mpc")

# Bits of the secure integers: counts stay below 2**40 (ten stations of
# 2**32 rows, the bound the aggregates use), with headroom for differences.
COUNT_BITS = 48


@dataclass(frozen=True)
class Figure:
    """One count to release: a measure over some lists in one cell."""

    cell: int
    measure: str
    lists: tuple[int, ...]
    invalid: bool = False

    def key(self, cells: list[str], names: list[str]) -> str:
        """Return the figure's name across queries, such as ``|pairwise|a,b``."""
        stations = ",".join(names[i] for i in self.lists)
        return f"{cells[self.cell]}|{self.measure}|{stations}"


def plan_figures(cells: int, owners: list[int]) -> list[Figure]:
    """List every figure of an overlap query, in release order.

    Per cell: unique persons, persons on exactly k lists for each k, each
    list's size, each pairwise intersection, each list's persons also on
    another list, and each list's invalid identifiers.
    """
    figures = []
    all_lists = tuple(owners)
    for cell in range(cells):
        figures.append(Figure(cell, "unique", all_lists))
        for k in range(1, len(owners) + 1):
            figures.append(Figure(cell, f"exactly_{k}", all_lists))
        figures += [Figure(cell, "list_size", (owner,)) for owner in owners]
        figures += [
            Figure(cell, "pairwise", pair) for pair in itertools.combinations(owners, 2)
        ]
        figures += [Figure(cell, "elsewhere", (owner,)) for owner in owners]
        figures += [Figure(cell, "invalid", (owner,), invalid=True) for owner in owners]
    return figures


def count_regions(lists: list[bytes]) -> list[int]:
    """Count the distinct elements in each combination of `lists`.

    Returns a vector indexed by bit mask: entry b counts the values that
    are in list i exactly when bit i of b is set. Entry 0 is unused. Each
    list must hold distinct elements.
    """
    width = len(lists)
    arrays = []
    labels = []
    for position, elements in enumerate(lists):
        # The first 16 bytes of a group element identify it: a collision
        # among a few million uniformly random 128-bit prefixes has
        # probability below 2**-80.
        prefix = np.frombuffer(elements, dtype=">u8").reshape(-1, 4)[:, :2]
        arrays.append(prefix)
        labels.append(np.full(len(prefix), 1 << position, dtype=np.int64))
    counts = [0] * (1 << width)
    if not arrays or sum(len(a) for a in arrays) == 0:
        return counts
    stacked = np.concatenate(arrays)
    keys = np.empty(len(stacked), dtype=[("high", ">u8"), ("low", ">u8")])
    keys["high"] = stacked[:, 0]
    keys["low"] = stacked[:, 1]
    _, inverse = np.unique(keys, return_inverse=True)
    masks = np.bincount(inverse.ravel(), weights=np.concatenate(labels))
    regions = np.bincount(masks.astype(np.int64), minlength=1 << width)
    return [int(value) for value in regions]


def _shuffle(elements: bytes) -> bytes:
    # Sorting by 64-bit keys from the operating system's CSPRNG gives a
    # uniformly random permutation (ties have probability below 2**-24 for
    # a million elements, and a tie only keeps two elements in order).
    array = np.frombuffer(elements, dtype=np.uint8).reshape(-1, 32)
    keys = np.frombuffer(os.urandom(8 * len(array)), dtype=np.uint64)
    return array[np.argsort(keys, kind="stable")].tobytes()


async def _off_loop(function: Any, *args: Any) -> Any:
    # Blinding takes seconds to minutes, so it runs beside the event loop and
    # MPyC keeps reading from its peers meanwhile.
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


class OverlapRun:
    """One party's state in one run of the protocol."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.parties = int(len(config["parties"]))
        self.names = [p["station"] for p in config["parties"]]
        self.me = int(config["index"])
        self.owners: list[int] = list(config["owners"])
        self.comparer = int(config["comparer"])
        self.cells: list[str] = list(config["cells"])
        self.min_count = int(config["min_count"])
        self.threads = int(config.get("threads", 1))
        self.padding_max = int(config.get("padding_max", 0))
        lists = config.get("lists")
        self.lists: list[list[str]] | None = lists
        self.invalid: list[int] = list(config.get("invalid") or [0] * len(self.cells))
        self.padding = [0] * len(self.cells)
        self.secint = mpc.SecInt(COUNT_BITS)
        self.timings: dict[str, float] = {}
        self.elements_blinded = 0

    @property
    def owns_list(self) -> bool:
        """Whether this party contributes a list."""
        return self.me in self.owners

    async def check_sizes(self) -> list[bool]:
        """Open, per owner, whether its list reaches the minimum count."""
        size = sum(len(ids) for ids in self.lists or []) if self.owns_list else 0
        shared = mpc.input(self.secint(size))
        bits = [shared[owner] >= self.min_count for owner in self.owners]
        opened = await mpc.output(bits)
        return [bool(int(bit)) for bit in opened]

    def _own_list(self, key: bytearray) -> list[bytes]:
        assert self.lists is not None
        blinded = []
        for cell, identifiers in enumerate(self.lists):
            self.padding[cell] = secrets.randbelow(self.padding_max + 1)
            elements = ristretto.hash_to_group(identifiers, self.cells[cell])
            elements += ristretto.random_elements(self.padding[cell])
            blinded.append(_shuffle(ristretto.blind(elements, key, self.threads)))
            self.elements_blinded += len(identifiers) + self.padding[cell]
        return blinded

    def _blind_in_hand(self, list_in_hand: list[bytes], key: bytearray) -> list[bytes]:
        result = []
        for elements in list_in_hand:
            result.append(_shuffle(ristretto.blind(elements, key, self.threads)))
            self.elements_blinded += len(elements) // ristretto.ELEMENT_BYTES
        return result

    async def blind_and_gather(self) -> dict[int, list[bytes]] | None:
        """Run the blinding ring and return, at the comparer, the lists by owner."""
        key = ristretto.new_scalar()
        try:
            started = time.monotonic()
            list_in_hand: list[bytes] | None = None
            if self.owns_list:
                list_in_hand = await _off_loop(self._own_list, key)
            ring = {p: [(p + 1) % self.parties] for p in range(self.parties)}
            for hop in range(1, self.parties):
                received = await mpc.transfer(list_in_hand, sender_receivers=ring)
                list_in_hand = received[0]
                if list_in_hand is not None:
                    list_in_hand = await _off_loop(
                        self._blind_in_hand, list_in_hand, key
                    )
                logger.debug("blinding hop %d of %d done", hop, self.parties - 1)
            self.timings["blinding_seconds"] = time.monotonic() - started
        finally:
            key[:] = bytes(len(key))
        # MPyC 0.11 looks up every party in this mapping, the comparer too.
        to_comparer = {
            p: [] if p == self.comparer else [self.comparer]
            for p in range(self.parties)
        }
        received = await mpc.transfer(list_in_hand, sender_receivers=to_comparer)
        if self.me != self.comparer:
            return None
        senders = [p for p in range(self.parties) if p != self.comparer]
        full: dict[int, list[bytes]] = {}
        for sender, lists in zip(senders, received, strict=True):
            if lists is not None:
                full[(sender + 1) % self.parties] = lists
        if list_in_hand is not None:
            full[(self.me + 1) % self.parties] = list_in_hand
        return full

    def regions(self, full: dict[int, list[bytes]]) -> list[int]:
        """Return the region counts of every cell, concatenated."""
        vector: list[int] = []
        for cell in range(len(self.cells)):
            vector += count_regions([full[owner][cell] for owner in self.owners])[1:]
        return vector

    async def count_and_release(self, regions: list[int] | None) -> dict[str, Any]:
        """Compute the figures in MPC, check them, and open what passes."""
        secint = self.secint
        width = (1 << len(self.owners)) - 1
        region_count = width * len(self.cells)
        mine = regions if regions is not None else [0] * region_count
        shared_regions = mpc.input([secint(v) for v in mine], senders=self.comparer)
        own_padding = self.padding if self.owns_list else [0] * len(self.cells)
        own_invalid = self.invalid if self.owns_list else [0] * len(self.cells)
        padding = mpc.input([secint(v) for v in own_padding], senders=self.owners)
        invalid = mpc.input([secint(v) for v in own_invalid], senders=self.owners)

        figures = plan_figures(len(self.cells), self.owners)
        values = [
            self._figure_value(f, shared_regions, padding, invalid, width)
            for f in figures
        ]
        regions, region_values = self._region_values(shared_regions, padding, width)
        checked = values + region_values
        passes = await mpc.output([v >= self.min_count for v in checked])
        checks: list[dict[str, Any]] = [
            {"figure": index, "rule": "min_count", "passed": bool(int(bit))}
            for index, bit in enumerate(passes[: len(values)])
        ]
        for (cell, members), bit in zip(regions, passes[len(values) :], strict=True):
            checks.append(
                {
                    "region": list(members),
                    "cell": cell,
                    "rule": "min_region",
                    "passed": bool(int(bit)),
                }
            )
        main_failed = [
            check
            for check in checks
            if not check["passed"]
            and not ("figure" in check and figures[check["figure"]].invalid)
        ]
        output: dict[str, Any] = {
            "figures": [
                {"cell": f.cell, "measure": f.measure, "lists": list(f.lists)}
                for f in figures
            ],
            "checks": checks,
            "values": None,
            "suspect_requests": [],
            "padding_blinded": sum(self.padding),
        }
        if main_failed:
            return output

        keys = [f.key(self.cells, self.names) for f in figures]
        suspects = await self._differencing(figures, keys, values)
        if suspects:
            output["suspect_requests"] = suspects
            return output

        figure_checks = checks[: len(values)]
        released = [
            v for v, c in zip(values, figure_checks, strict=True) if c["passed"]
        ]
        opened = await mpc.output(released)
        numbers = iter(int(v) for v in opened)
        output["values"] = [
            next(numbers) if c["passed"] else None for c in figure_checks
        ]
        output["keys"] = keys
        return output

    def _region_values(
        self, regions: list[Any], padding: list[list[Any]], width: int
    ) -> tuple[list[tuple[int, tuple[int, ...]]], list[Any]]:
        """Return every Venn region (persons on exactly these lists) per cell.

        Every released figure is a sum of regions, so when every region has
        at least min_count persons, so has every difference of two released
        figures, such as a list's persons on no other list.
        """
        names: list[tuple[int, tuple[int, ...]]] = []
        values = []
        for cell in range(len(self.cells)):
            for mask in range(1, width + 1):
                members = tuple(
                    owner for bit, owner in enumerate(self.owners) if mask >> bit & 1
                )
                value = regions[cell * width + mask - 1]
                if len(members) == 1:
                    owner_padding = padding[self.owners.index(members[0])]
                    value = value - owner_padding[cell]
                names.append((cell, members))
                values.append(value)
        return names, values

    def _figure_value(
        self,
        figure: Figure,
        regions: list[Any],
        padding: list[list[Any]],
        invalid: list[list[Any]],
        width: int,
    ) -> Any:
        base = figure.cell * width
        position = {owner: bit for bit, owner in enumerate(self.owners)}

        def total(select: Any) -> Any:
            chosen = [
                regions[base + mask - 1] for mask in range(1, width + 1) if select(mask)
            ]
            return mpc.sum(chosen) if chosen else self.secint(0)

        def pad(owner: int) -> Any:
            return padding[self.owners.index(owner)][figure.cell]

        all_padding = mpc.sum([pad(owner) for owner in self.owners])
        if figure.measure == "unique":
            return total(lambda mask: True) - all_padding
        if figure.measure.startswith("exactly_"):
            k = int(figure.measure.removeprefix("exactly_"))
            value = total(lambda mask: bin(mask).count("1") == k)
            return value - all_padding if k == 1 else value
        if figure.measure == "pairwise":
            bits = (1 << position[figure.lists[0]]) | (1 << position[figure.lists[1]])
            return total(lambda mask: mask & bits == bits)
        owner = figure.lists[0]
        bit = 1 << position[owner]
        if figure.measure == "list_size":
            return total(lambda mask: mask & bit) - pad(owner)
        if figure.measure == "elsewhere":
            return total(lambda mask: mask & bit and mask != bit)
        if figure.measure == "invalid":
            return invalid[self.owners.index(owner)][figure.cell]
        raise ValueError(f"unknown overlap measure {figure.measure!r}")

    async def _differencing(
        self, figures: list[Figure], keys: list[str], values: list[Any]
    ) -> list[str]:
        """Return the earlier requests that a figure differs from by 1 to t - 1."""
        limit = self.min_count - 1
        entries = []
        flags = []
        for entry in self.config.get("history", []):
            earlier: dict[str, int] = entry["figures"]
            closeness = []
            for figure, key, value in zip(figures, keys, values, strict=True):
                if figure.invalid or key not in earlier:
                    continue
                difference = value - earlier[key]
                near = (difference >= -limit) * (difference <= limit)
                closeness.append(near - (difference == 0))
            if closeness:
                entries.append(entry["request_id"])
                flags.append(mpc.sum(closeness) >= 1)
        if not flags:
            return []
        opened = await mpc.output(flags)
        return [
            request for request, bit in zip(entries, opened, strict=True) if int(bit)
        ]


async def overlap_and_release(config: dict[str, Any]) -> dict[str, Any]:
    """Run the protocol above with this party's `config`.

    Returns ``{"status": "released" | "blocked", "rule": ..., ...}`` with
    the figures, their checks and, when released, their values.
    """
    run = OverlapRun(config)
    started = time.monotonic()
    sizes = await run.check_sizes()
    short = [owner for owner, ok in zip(run.owners, sizes, strict=True) if not ok]
    if short:
        return {
            "status": "blocked",
            "rule": "min_list_size",
            "short_lists": short,
            "figures": [],
            "checks": [
                {"list": owner, "rule": "min_list_size", "passed": ok}
                for owner, ok in zip(run.owners, sizes, strict=True)
            ],
            "values": None,
        }
    full = await run.blind_and_gather()
    regions = run.regions(full) if full is not None else None
    compared = time.monotonic()
    output = await run.count_and_release(regions)
    run.timings["counting_seconds"] = time.monotonic() - compared
    if output["suspect_requests"]:
        output["status"], output["rule"] = "blocked", "differencing"
    elif output["values"] is None:
        output["status"], output["rule"] = "blocked", "min_count"
    else:
        output["status"], output["rule"] = "released", None
    output["timings"] = {k: round(v, 3) for k, v in run.timings.items()}
    output["timings"]["protocol_seconds"] = round(time.monotonic() - started, 3)
    output["elements_blinded"] = run.elements_blinded
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in kilobytes on Linux.
    output["peak_rss_mb"] = usage.ru_maxrss / 1024
    output["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
    return output
