"""Join the stations' rows on a person key and aggregate the joined rows under MPC.

This is the MPC party's side of a vertical join: datasets at different
stations hold different columns about partly the same persons. The m >= 3
parties are stations, numbered 0..m-1 in task order; the owners hold one
dataset each and one party is the comparer C. Keys arrive normalised, valid
and distinct. Every numeric value arrives divided by its public scale, so
that it lies in [-1, 1], and is 0 where it is missing.

Protocol:

1. Rows: every owner j pads its rows with a random number (0 to
   ``padding_max``) of dummy rows, whose keys are random group elements and
   whose columns are 0, and shuffles them with a private random permutation.
   Every owner sends its padded row count to every party.
2. Keys: every party draws a fresh secret scalar. Each owner hashes its keys
   into ristretto255 and multiplies them by its scalar; the lists then move
   m - 1 times one step around the ring p -> p+1, and every holder multiplies
   by its scalar, keeping the order. The one exception is C's own list: the
   party a = C+1 shuffles it with a random permutation sigma and sends sigma
   to the party b = C+2, so that C never sees its own rows in an order it
   knows. C receives all fully blinded lists, takes the keys present in every
   list (inner join), orders the joined rows at random, and computes for each
   list j the alignment f_j: the position in list j of each joined row.
3. Alignment (MPC): two parties P and Q that know f_j, neither of them j,
   put owner j's columns X into the joined order. Owner j splits X, in its
   shuffled order, into a uniformly random field matrix A, which it sends
   to P, and B = X - A, which it sends to Q. P secret-shares A[f_j], Q
   secret-shares B[f_j], and their sum is X[f_j]. For j != C, P is C and Q
   is the first party that is neither j nor C, which C sends f_j. For C's
   list, P and Q are a and b, which C sends f_C and which know sigma.
4. Aggregation (MPC): the row weight is the product of the owners' 0/1
   filter columns (each owner's part of the WHERE), and each cell's weight
   the row weight times one 0/1 level column per GROUP BY column. Counts,
   sums and sums of squares per cell are sums of products. The parties open
   one pass/fail bit per released count (at least ``min_count``) and only
   when every bit passes the counts, sums and sums of squares. For an OLS
   fit, one secure matrix product over the complete cases gives n, X'X, X'y
   and y'y, which are solved and checked as for horizontal data.

Who learns what (semi-honest parties, no two colluding):

* Every party learns each owner's padded row count and the joined row
  count n, which every party needs to size the secret-shared arrays. The
  scientist gets n only when it reaches ``min_count``.
* C also learns, of the padded lists, how many values lie in each
  combination of lists (each region of the Venn diagram), and the positions
  of the joined rows in each list as it received it: in another owner's
  private random order, or in sigma's order for its own list. It cannot
  link a position or a value to a person.
* Q (and for C's list, a and b) learn the positions of the joined rows in
  the owner's private random order, which do not identify a row either.
  P and Q each receive one of A and B, each uniformly random on its own.
* No owner learns which of its rows matched. All parties learn the opened
  bits and, if released, the figures.

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
from station.join_dominance import dominance_bits
from station.logistic import fixed_point_size
from station.secure_regression import solve_and_release

__all__ = ["JoinLayout", "align_lists", "join_and_release", "random_permutation"]

logger = logging.getLogger("linksight.station.mpc")

# Cell name under which join keys are hashed, so that a key never hashes to
# the element an overlap query makes of the same identifier.
KEY_DOMAIN = "vertical join"


@dataclass(frozen=True)
class JoinLayout:
    """The public column names of one owner's rows.

    Indicators are 0/1 columns: the owner's filter column first, then level
    columns of GROUP BY columns and presence columns of numeric columns.
    Values are numeric columns divided by their ``scales``.
    """

    owner: int
    indicators: list[str]
    values: list[str]
    scales: list[float]
    # False when the query has no condition on this owner's columns, so that
    # its filter column is all ones and the row weight needs no product.
    filtered: bool = True

    @property
    def width(self) -> int:
        """The number of columns the owner secret-shares."""
        return len(self.indicators) + len(self.values)


def random_permutation(count: int) -> np.ndarray:
    """Return a uniformly random permutation of range(`count`).

    The permutation sorts 64-bit keys from the operating system's CSPRNG,
    as the overlap protocol's shuffle does.
    """
    keys = np.frombuffer(os.urandom(8 * count), dtype=np.uint64)
    return np.argsort(keys, kind="stable")


def _prefixes(elements: bytes) -> np.ndarray:
    # The first 16 bytes identify a group element, as in count_regions.
    words = np.frombuffer(elements, dtype=">u8").reshape(-1, 4)[:, :2]
    keys = np.empty(len(words), dtype=[("high", ">u8"), ("low", ">u8")])
    keys["high"] = words[:, 0]
    keys["low"] = words[:, 1]
    return keys


def align_lists(lists: list[bytes]) -> list[np.ndarray]:
    """Return, per list, the positions of the values present in every list.

    Entry k of every returned array points at the same value: the joined
    rows are in a random order that no list's order reveals. Each list must
    hold distinct values.
    """
    keys = [_prefixes(elements) for elements in lists]
    common = keys[0]
    for other in keys[1:]:
        common = np.intersect1d(common, other, assume_unique=True)
    common = common[random_permutation(len(common))]
    alignment = []
    for list_keys in keys:
        order = np.argsort(list_keys)
        found = np.searchsorted(list_keys, common, sorter=order)
        alignment.append(order[found].astype(np.int64))
    return alignment


def _random_field_matrix(field: Any, shape: tuple[int, int]) -> Any:
    # 64 bits above the modulus make the reduced value uniform to within
    # 2**-64 in statistical distance.
    width = (field.order.bit_length() + 64 + 7) // 8
    blob = os.urandom(width * shape[0] * shape[1])
    values = [
        int.from_bytes(blob[i : i + width], "big") % field.order
        for i in range(0, len(blob), width)
    ]
    return field.array(np.array(values, dtype=object).reshape(shape))


class JoinRun:
    """One party's state in one run of the protocol."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.parties = len(config["parties"])
        self.me = int(config["index"])
        self.comparer = int(config["comparer"])
        self.layouts = [JoinLayout(**layout) for layout in config["layout"]]
        self.owners = [layout.owner for layout in self.layouts]
        self.min_count = int(config["min_count"])
        self.padding_max = int(config.get("padding_max", 0))
        self.threads = int(config.get("threads", 1))
        fraction_bits = int(config["fraction_bits"])
        self.secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)
        self.timings: dict[str, float] = {}
        self.keys: bytes | None = None
        self.rows: np.ndarray | None = None
        self._check_config()

    def _check_config(self) -> None:
        if self.parties < 3:
            raise ValueError(
                f"a vertical join runs on {self.parties} parties, but needs at "
                "least 3 so that no party reorders its own rows; add a data-less "
                "helper station"
            )
        if len(set(self.owners)) != len(self.owners) or len(self.owners) < 2:
            raise ValueError(
                f"the owners {self.owners} of a vertical join must be at least 2 "
                "distinct parties; give one layout per dataset"
            )
        if not 0 <= self.comparer < self.parties:
            raise ValueError(
                f"the comparer {self.comparer} is not a party; choose one of "
                f"0 to {self.parties - 1}"
            )
        names = [
            n for layout in self.layouts for n in layout.indicators + layout.values
        ]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"column names {duplicates} occur in more than one dataset of the "
                "join; qualify them with the dataset name"
            )
        for layout in self.layouts:
            if not layout.indicators:
                raise ValueError(
                    f"the rows of party {layout.owner} have no filter column; send "
                    "a column of ones when its dataset has no filter"
                )
            if len(layout.scales) != len(layout.values):
                raise ValueError(
                    f"party {layout.owner} lists {len(layout.values)} value columns "
                    f"but {len(layout.scales)} scales; give one scale per column"
                )

    def size_for_logit(self, rows: int) -> None:
        """Size the secure numbers of a logistic fit for at most `rows` joined rows.

        The joined n is at most the smallest padded row count. Every party
        receives that count before any value is shared, so the Hessian's bound
        n / 4 rests on it instead of on the bound for every station's rows. This
        keeps f, and so the cost of every row's logistic function, small.
        """
        fraction_bits = fixed_point_size(1, rows)
        self.secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)

    @property
    def my_layout(self) -> JoinLayout | None:
        """This party's layout, or None when it owns no rows."""
        for layout in self.layouts:
            if layout.owner == self.me:
                return layout
        return None

    def pad_and_shuffle(self) -> int:
        """Hash, pad and shuffle this owner's rows; return the padded row count."""
        layout = self.my_layout
        assert layout is not None
        keys: list[str] = list(self.config["keys"])
        if len(set(keys)) != len(keys):
            raise ValueError(
                f"the join keys of party {self.me} contain duplicates; the station "
                "must drop duplicate keys before the join"
            )

        rows = self._read_rows(layout, len(keys))
        padding = secrets.randbelow(self.padding_max + 1)
        elements = ristretto.hash_to_group(keys, KEY_DOMAIN)
        elements += ristretto.random_elements(padding)
        rows = np.vstack([rows, np.zeros((padding, layout.width))])

        order = random_permutation(len(rows))
        array = np.frombuffer(elements, dtype=np.uint8).reshape(-1, 32)
        self.keys = array[order].tobytes()
        self.rows = rows[order]
        return len(rows)

    def _read_rows(self, layout: JoinLayout, count: int) -> np.ndarray:
        """Return this owner's columns as a `count` x width array, checked."""
        columns = list(self.config["indicators"]) + list(self.config["values"])
        if len(columns) != layout.width:
            raise ValueError(
                f"party {self.me} sent {len(columns)} columns, but its layout "
                f"lists {layout.width}; send one column per name in the layout"
            )

        rows = np.zeros((count, layout.width))
        for position, column in enumerate(columns):
            if len(column) != count:
                raise ValueError(
                    f"column {position} of party {self.me} has {len(column)} "
                    f"values for {count} keys; every column needs one per key"
                )
            rows[:, position] = column

        if not layout.filtered and not (rows[:, 0] == 1).all():
            raise ValueError(
                f"party {self.me} is declared unfiltered, but its filter column "
                "contains a 0; send a column of ones or set filtered to true"
            )
        indicators = rows[:, : len(layout.indicators)]
        if not np.isin(indicators, (0.0, 1.0)).all():
            raise ValueError(
                f"an indicator column of party {self.me} contains a value other "
                "than 0 or 1; send filters, levels and presence as 0 or 1"
            )
        values = rows[:, len(layout.indicators) :]
        if not np.isfinite(values).all():
            raise ValueError(
                f"a value column of party {self.me} contains NaN or infinity; send 0 "
                "for a missing value and 0 in its presence column"
            )
        if values.size and np.abs(values).max() > 1:
            raise ValueError(
                f"a value column of party {self.me} lies outside [-1, 1]; divide "
                "each column by its declared maximum absolute value"
            )
        return rows

    async def share_sizes(self) -> dict[int, int]:
        """Send this owner's padded row count to all; return every owner's."""
        size = await asyncio.to_thread(self.pad_and_shuffle) if self.my_layout else None
        received = await mpc.transfer(size)
        return {owner: int(received[owner]) for owner in self.owners}

    async def blind_and_gather(
        self, sizes: dict[int, int]
    ) -> tuple[dict[int, bytes] | None, np.ndarray | None]:
        """Run the blinding ring; return the lists at C, and sigma at a and b."""
        a, b = self.partners_of_comparer()
        comparer_owns = self.comparer in self.owners
        sigma = None
        if self.me == a and comparer_owns:
            sigma = random_permutation(sizes[self.comparer])

        key = ristretto.new_scalar()
        try:
            started = time.monotonic()
            in_hand = None
            if self.keys is not None:
                in_hand = await asyncio.to_thread(
                    ristretto.blind, self.keys, key, self.threads
                )
            ring = {p: [(p + 1) % self.parties] for p in range(self.parties)}
            for hop in range(1, self.parties):
                in_hand = (await mpc.transfer(in_hand, sender_receivers=ring))[0]
                if in_hand is None:
                    continue
                in_hand = await asyncio.to_thread(
                    ristretto.blind, in_hand, key, self.threads
                )
                origin = (self.me - hop) % self.parties
                if origin == self.comparer and sigma is not None:
                    array = np.frombuffer(in_hand, dtype=np.uint8).reshape(-1, 32)
                    in_hand = array[sigma].tobytes()
            self.timings["blinding_seconds"] = time.monotonic() - started
        finally:
            key[:] = bytes(len(key))

        shared_sigma = await self._send_to(a, b, sigma)
        if self.me == b:
            sigma = shared_sigma[0]

        to_comparer = {
            p: [] if p == self.comparer else [self.comparer]
            for p in range(self.parties)
        }
        received = await mpc.transfer(in_hand, sender_receivers=to_comparer)
        if self.me != self.comparer:
            return None, sigma

        senders = [p for p in range(self.parties) if p != self.comparer]
        full: dict[int, bytes] = {}
        for sender, elements in zip(senders, received, strict=True):
            if elements is not None:
                full[(sender + 1) % self.parties] = elements
        if in_hand is not None:
            full[(self.me + 1) % self.parties] = in_hand
        return full, sigma

    def partners_of_comparer(self) -> tuple[int, int]:
        """Return a and b: the parties that shuffle and reorder C's own list."""
        return (self.comparer + 1) % self.parties, (self.comparer + 2) % self.parties

    def partners(self, owner: int) -> tuple[int, int]:
        """Return (P, Q), the parties that reorder `owner`'s rows."""
        if owner == self.comparer:
            return self.partners_of_comparer()
        third = min(p for p in range(self.parties) if p not in (owner, self.comparer))
        return self.comparer, third

    async def share_alignment(
        self, full: dict[int, bytes] | None, sigma: np.ndarray | None
    ) -> tuple[int, dict[int, np.ndarray]]:
        """Send n to all and each alignment to its partners; return what this party got.

        The returned alignments point into the rows as their owner shared
        them, so for C's list sigma is already applied.
        """
        alignments: dict[int, np.ndarray] = {}
        joined = None
        if full is not None:
            positions = align_lists([full[owner] for owner in self.owners])
            alignments = dict(zip(self.owners, positions, strict=True))
            joined = len(positions[0])
        received = await mpc.transfer(joined, senders=self.comparer)
        joined = int(received)
        mine: dict[int, np.ndarray] = {}
        for owner in self.owners:
            p, q = self.partners(owner)
            receivers = [r for r in (p, q) if r != self.comparer]
            value = alignments.get(owner)
            # MPyC 0.11 looks up every party in this mapping.
            graph = {
                sender: receivers if sender == self.comparer else []
                for sender in range(self.parties)
            }
            sent = await mpc.transfer(value, sender_receivers=graph)
            if self.me in (p, q):
                alignment = value if self.me == self.comparer else sent[0]
                if owner == self.comparer:
                    assert sigma is not None
                    alignment = sigma[alignment]
                mine[owner] = alignment
        return joined, mine

    def _send_to(self, sender: int, receiver: int, value: Any) -> Any:
        # MPyC 0.11 looks up every party in this mapping.
        graph = {p: [receiver] if p == sender else [] for p in range(self.parties)}
        return mpc.transfer(value, sender_receivers=graph)

    async def reorder(
        self, owner: int, alignment: np.ndarray | None, joined: int
    ) -> Any:
        """Secret-share `owner`'s rows in the joined order, via its partners."""
        layout = self.layouts[self.owners.index(owner)]
        p, q = self.partners(owner)
        part_p = part_q = None
        if self.me == owner:
            assert self.rows is not None
            field = self.secfxp.field
            scale = 1 << self.secfxp.frac_length
            encoded = field.array(np.vectorize(round, otypes="O")(self.rows * scale))
            part_p = _random_field_matrix(field, self.rows.shape)
            part_q = encoded - part_p
        received_p = await self._send_to(owner, p, part_p)
        received_q = await self._send_to(owner, q, part_q)
        array = self.secfxp.array
        shape = (joined, layout.width)
        inputs = []
        for partner, received in ((p, received_p), (q, received_q)):
            if self.me == partner:
                assert alignment is not None
                inputs.append(array(received[0][alignment], integral=False))
            else:
                inputs.append(array(None, shape=shape, integral=False))
        aligned = mpc.input(inputs[0], senders=p) + mpc.input(inputs[1], senders=q)
        aligned.integral = False
        return aligned


@dataclass(frozen=True)
class Cell:
    """One combination of GROUP BY levels: its labels and level columns."""

    labels: tuple[str, ...]
    columns: tuple[str, ...]


def plan_cells(groups: list[dict[str, Any]]) -> list[Cell]:
    """Return every combination of the groups' levels, in release order."""
    choices = [list(zip(g["levels"], g["columns"], strict=True)) for g in groups]
    return [
        Cell(tuple(c[0] for c in combo), tuple(c[1] for c in combo))
        for combo in itertools.product(*choices)
    ]


def _columns_by_name(run: JoinRun, aligned: dict[int, Any]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for layout in run.layouts:
        block = aligned[layout.owner]
        for position, name in enumerate(layout.indicators):
            column = block[:, position]
            column.integral = True
            columns[name] = column
        offset = len(layout.indicators)
        for position, name in enumerate(layout.values):
            columns[name] = block[:, offset + position]
    return columns


def _row_weight(
    run: JoinRun, columns: dict[str, Any], extra: list[str]
) -> tuple[Any, bool]:
    """Return the row weight, 1 on rows that pass, and whether it varies.

    The weight is the product of the filtered owners' filter columns and
    the `extra` columns. Without any, it is the first owner's filter
    column, which is known to be all ones, so no product is needed with it.
    """
    factors = [
        columns[layout.indicators[0]] for layout in run.layouts if layout.filtered
    ]
    factors += [columns[name] for name in extra]
    if not factors:
        return columns[run.layouts[0].indicators[0]], False
    weight = factors[0]
    for factor in factors[1:]:
        weight = weight * factor
    return weight, True


def _complement_passes(run: JoinRun, weight: Any, joined: int) -> Any:
    """Return a secret bit: the joined persons the weight leaves out are 0 or enough.

    The joined n is released beside the counts of the rows that pass, so the
    persons left out by the filter (or by missing values) are released too,
    and must be none or at least ``min_count``.
    """
    outside = joined - mpc.np_sum(weight)
    return (outside >= run.min_count) + (outside == 0)


def _complement_check(passed: bool) -> dict[str, Any]:
    return {
        "rule": "min_count",
        "statistic": "joined persons left out by the filter",
        "cell": [],
        "passed": passed,
    }


async def complement_blocked(
    run: JoinRun, weight: Any, joined: int, names: list[str]
) -> dict[str, Any] | None:
    """Open the complement bit of a model fit; return its blocked output if it fails."""
    passed = await mpc.output(_complement_passes(run, weight, joined))
    if round(float(passed)):
        return None
    return {
        "checks": [_complement_check(False)],
        "names": names,
        "status": "blocked",
        "rule": "min_count",
        "values": None,
    }


@dataclass
class ModelRows:
    """The joined columns and complete-case row weight of a model fit."""

    columns: dict[str, Any]
    weight: Any
    # Whether the weight can be 0 on some row (a filter or a missing value).
    varies: bool
    names: list[str]
    # The blocked output when the persons left out fail min_count, else None.
    blocked: dict[str, Any] | None


async def model_rows(
    run: JoinRun, aligned: dict[int, Any], joined: int, model: dict[str, Any]
) -> ModelRows:
    """Return the columns, row weight and design names of `model`'s fit."""
    columns = _columns_by_name(run, aligned)
    weight, varies = _row_weight(run, columns, list(model["present"]))
    names = ["Intercept", *model["terms"]]
    blocked = None
    if varies:
        blocked = await complement_blocked(run, weight, joined, names)
    return ModelRows(columns, weight, varies, names, blocked)


def _value_scales(run: JoinRun) -> dict[str, float]:
    return {
        name: scale
        for layout in run.layouts
        for name, scale in zip(layout.values, layout.scales, strict=True)
    }


async def fit_and_release(
    run: JoinRun, aligned: dict[int, Any], joined: int
) -> dict[str, Any]:
    """Fit the OLS model of ``config["ols"]`` on the joined rows; open what passes.

    The design is an intercept and the ``terms`` columns, the response the
    ``response`` column, over the rows that pass the filter and have every
    ``present`` column 1 (complete cases). One secure matrix product gives
    n, X'X, X'y and y'y, and :func:`station.secure_regression.solve_and_release`
    solves and checks them as for horizontal data. The opened coefficients
    and variances are scaled back to the columns' units.
    """
    model = run.config["ols"]
    rows = await model_rows(run, aligned, joined, model)
    if rows.blocked is not None:
        return rows.blocked
    columns, weight, varies, names = rows.columns, rows.weight, rows.varies, rows.names

    parts = [weight]
    for name in [*model["terms"], model["response"]]:
        parts.append(weight * columns[name] if varies else columns[name])
    stacked = np.column_stack(parts)
    gram = mpc.np_tolist(np.transpose(stacked) @ stacked)
    p = len(names)
    pooled = [gram[0][0]]
    pooled += [gram[i][j] for i in range(p) for j in range(i, p)]
    pooled += [gram[i][p] for i in range(p)]
    pooled.append(gram[p][p])
    settings = {
        "parameters": p,
        "names": names,
        "factors": model.get("factors", []),
        "min_count": run.min_count,
        "min_residual_df": model["min_residual_df"],
        "max_parameter_fraction": model["max_parameter_fraction"],
    }
    fit = await solve_and_release(run.secfxp, pooled, None, settings)
    checks = [_complement_check(True)] if varies else []
    output: dict[str, Any] = {"checks": checks + fit["checks"], "names": names}
    failed = [check for check in fit["checks"] if not check["passed"]]
    if failed:
        output.update(status="blocked", rule=failed[0]["rule"], values=None)
        return output
    scales = _value_scales(run)
    response_scale = scales.get(model["response"], 1.0)
    factors = [response_scale / scales.get(name, 1.0) for name in names]
    values = fit["values"]
    coefficients = [b * f for b, f in zip(values["coefficients"], factors, strict=True)]
    variances = [v * f * f for v, f in zip(values["variances"], factors, strict=True)]
    output.update(
        status="released",
        rule=None,
        joined=joined,
        values={"coefficients": coefficients, "variances": variances, "n": values["n"]},
    )
    return output


async def aggregate_and_release(
    run: JoinRun, aligned: dict[int, Any], joined: int
) -> dict[str, Any]:
    """Compute counts and sums per cell on the joined rows; open what passes."""
    config = run.config
    columns = _columns_by_name(run, aligned)
    cells = plan_cells(config.get("groups", []))
    means = config.get("means", [])
    weight, varies = _row_weight(run, columns, [])

    counts = []
    sums = []
    squares = []
    present_counts = []
    magnitudes = []
    for cell in cells:
        factors = [weight] if varies or not cell.columns else []
        factors += [columns[name] for name in cell.columns]
        cell_weight = factors[0]
        for factor in factors[1:]:
            cell_weight = cell_weight * factor
        counts.append(mpc.np_sum(cell_weight))
        for mean in means:
            present = cell_weight * columns[mean["present"]]
            present_counts.append(mpc.np_sum(present))
            weighted = present * columns[mean["value"]]
            sums.append(mpc.np_sum(weighted))
            squares.append(weighted @ columns[mean["value"]])
            magnitudes.append(weighted)

    checked = counts + present_counts
    passing = [count >= run.min_count for count in checked]
    if varies:
        passing.append(_complement_passes(run, weight, joined))
    dominance = []
    dominance_passing = []
    settings = config.get("dominance")
    if settings is not None:
        for (cell, mean), weighted in zip(
            itertools.product(cells, means), magnitudes, strict=True
        ):
            for rule, bit in dominance_bits(weighted, settings):
                dominance_passing.append(bit)
                dominance.append((rule, cell, mean["value"]))
    bits = await mpc.output(passing)
    # The dominance bits are of a smaller secure type, so they are opened apart.
    if dominance_passing:
        bits += await mpc.output(dominance_passing)
    checks = []
    for index, cell in enumerate(cells):
        checks.append(
            {
                "rule": "min_count",
                "statistic": "count(*)",
                "cell": list(cell.labels),
                "passed": bool(round(float(bits[index]))),
            }
        )
    for index, (cell, mean) in enumerate(itertools.product(cells, means)):
        checks.append(
            {
                "rule": "min_count",
                "statistic": f"count({mean['value']})",
                "cell": list(cell.labels),
                "passed": bool(round(float(bits[len(cells) + index]))),
            }
        )
    if varies:
        checks.append(_complement_check(bool(round(float(bits[len(checked)])))))
    offset = len(checked) + int(varies)
    for index, (rule, cell, column) in enumerate(dominance):
        checks.append(
            {
                "rule": rule,
                "statistic": f"sum({column})",
                "column": column,
                "cell": list(cell.labels),
                "passed": bool(round(float(bits[offset + index]))),
            }
        )
    output: dict[str, Any] = {
        "checks": checks,
        "cells": [list(c.labels) for c in cells],
    }
    failed = [check for check in checks if not check["passed"]]
    if failed:
        output.update(status="blocked", rule=failed[0]["rule"], values=None)
        return output

    opened = await mpc.output(counts + present_counts + sums + squares)
    numbers = [float(value) for value in opened]
    rows = _cell_rows(cells, means, _value_scales(run), numbers)
    output.update(status="released", rule=None, values=rows, joined=joined)
    return output


def _cell_rows(
    cells: list[Cell],
    means: list[dict[str, str]],
    scales: dict[str, float],
    numbers: list[float],
) -> list[dict[str, Any]]:
    """Return one row per cell from the opened counts, sums and sums of squares.

    `numbers` contains the cells' counts, then the non-missing counts, sums
    and sums of squares, each cell-major, and the sums are in scaled units.
    """
    c, k = len(cells), len(cells) * len(means)
    rows = []
    for index, cell in enumerate(cells):
        row: dict[str, Any] = {"cell": list(cell.labels)}
        row["count"] = int(round(numbers[index]))
        for position, mean in enumerate(means):
            slot = index * len(means) + position
            n = int(round(numbers[c + slot]))
            scale = scales[mean["value"]]
            total = numbers[c + k + slot] * scale
            square = numbers[c + 2 * k + slot] * scale * scale
            name = mean["value"]
            row[f"count({name})"] = n
            row[f"mean({name})"] = total / n
            row[f"var({name})"] = (
                (square - total * total / n) / (n - 1) if n > 1 else None
            )
        rows.append(row)
    return rows


async def join_and_release(config: dict[str, Any]) -> dict[str, Any]:
    """Run the protocol above with this party's `config`.

    Returns ``{"status": "released" | "blocked", "rule": ..., "checks": ...,
    "values": ...}``; when released, ``values`` holds one row per cell.
    """
    run = JoinRun(config)
    started = time.monotonic()
    sizes = await run.share_sizes()
    if "logit" in config:
        run.size_for_logit(min(sizes.values()))
    full, sigma = await run.blind_and_gather(sizes)
    joined, alignments = await run.share_alignment(full, sigma)
    logger.debug("joined %d rows of padded sizes %s", joined, sizes)
    if joined < run.min_count:
        return {
            "status": "blocked",
            "rule": "min_count",
            "checks": [
                {
                    "rule": "min_count",
                    "statistic": "joined persons",
                    "cell": [],
                    "passed": False,
                }
            ],
            "values": None,
        }
    aligning = time.monotonic()
    aligned = {}
    for owner in run.owners:
        aligned[owner] = await run.reorder(owner, alignments.get(owner), joined)
    run.timings["alignment_seconds"] = time.monotonic() - aligning
    computing = time.monotonic()
    if "ols" in config:
        output = await fit_and_release(run, aligned, joined)
    elif "logit" in config:
        # Imported here because the logistic fit builds on this module.
        from station.secure_join_logistic import fit_logistic_and_release

        output = await fit_logistic_and_release(run, aligned, joined, started)
    else:
        output = await aggregate_and_release(run, aligned, joined)
    run.timings["aggregation_seconds"] = time.monotonic() - computing
    output["timings"] = {k: round(v, 3) for k, v in run.timings.items()}
    output["timings"]["protocol_seconds"] = round(time.monotonic() - started, 3)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in kilobytes on Linux.
    output["peak_rss_mb"] = usage.ru_maxrss / 1024
    output["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
    return output
