"""Kaplan-Meier counts and the log-rank test across stations, under MPC.

Protocol (MPyC, Shamir secret sharing, honest majority, every station a
party, at least three parties). Each party holds its table of (time, group,
rows, events) from ``station.survival``; m is the minimum count.

1. Each party secret-shares its persons per group and, if it belongs to the
   requesting scientist's organisation, the same again as its own part. The
   parties open only the bits n_g >= m and n_g - own_g >= m per group; if
   one fails, nothing else is opened. Otherwise they open n_g.
2. Finding the cut, the last day on which every group has at least m
   persons at risk: in each round the parties secret-share their persons at
   risk (time >= d) at up to 15 public days d spread over the interval still
   in question, and open one bit per day, whether every group has at least
   m persons at risk there. The bits are monotone in d, so four rounds
   narrow the declared time range of 10,001 days to one day.
3. For every day from the declared minimum to the cut, the parties
   secret-share their persons at risk and events per group and open the
   sums: these are the released Kaplan-Meier counts, each day resting on at
   least m persons at risk per group.
4. For the log-rank test only: the parties open B, the number of persons
   still at risk after the cut (all groups together). Each party
   secret-shares its own rows that end after the cut as records (time,
   event, group), padded with empty records to B, so that no party learns
   another's number of such rows. Over all records, the parties compare
   every pair of times, count for each event record the persons at risk and
   the events at its time, and add up the observed minus expected events
   and their covariance, all secret. The head's part, from the opened
   counts of 3, is public. The statistic U' V^-1 U is computed in MPC and
   only it is opened.

Threat model: semi-honest parties, no coalition of more than
floor((m - 1) / 2) of the parties. Every party learns the opened bits, n_g,
the cut, the daily counts up to the cut, and for the log-rank test B and
the statistic. Nothing about the rows after the cut is opened but B and
their part of the statistic.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from mpyc.runtime import mpc

from station.mpc_numbers import clear_integral
from station.secure_regression import gauss_jordan
from station.survival import logrank_terms

logger = logging.getLogger("linksight.station.mpc")

# Public days probed per round of the search for the cut.
PROBES_PER_ROUND = 15
# The log-rank tail compares every pair of its records, R^2 comparisons for
# R = parties * B records; beyond this B the computation would take hours.
MAX_TAIL = 250
# Fractional bits of the tail's numbers (l = 2f). Its counts are at most
# parties * MAX_TAIL and its times at most 2^31, and the tail's score and
# variance, to which the head's public ones are added, stay below 2^31 for
# fewer than 2^31 events. 32 fractional bits keep 1/n for n up to a few
# thousand to about 7 significant digits, so the statistic to about 1e-9.
TAIL_FRACTION_BITS = 32


def _pool(values: list[float], secfxp: Any) -> list[Any]:
    """Secret-share every party's `values` and return their sums."""
    shared = mpc.input([secfxp(float(value)) for value in values])
    for party in shared:
        clear_integral(party)
    return [mpc.sum(list(column)) for column in zip(*shared, strict=True)]


class LocalTable:
    """This party's (time, group, rows, events) lines and the counts they give."""

    def __init__(self, lines: list[list[int]], groups: int):
        self.lines = lines
        self.groups = groups

    def persons(self) -> list[int]:
        """Return the number of rows per group."""
        counts = [0] * self.groups
        for _, group, rows, _ in self.lines:
            counts[group] += rows
        return counts

    def at_risk(self, day: int) -> list[int]:
        """Return the rows per group whose time is `day` or later."""
        counts = [0] * self.groups
        for time, group, rows, _ in self.lines:
            if time >= day:
                counts[group] += rows
        return counts

    def daily(self, first: int, last: int) -> tuple[list[list[int]], list[list[int]]]:
        """Return persons at risk and events per group for each day first..last."""
        span = last - first + 1
        ending = [[0] * (span + 1) for _ in range(self.groups)]
        events = [[0] * span for _ in range(self.groups)]
        later = [0] * self.groups
        for time, group, rows, count in self.lines:
            if time > last:
                later[group] += rows
            elif time >= first:
                ending[group][time - first] += rows
                events[group][time - first] += count
            # Rows before `first` cannot exist: the schema's minimum is first.
        at_risk = []
        for group in range(self.groups):
            running = later[group]
            column = [0] * span
            for k in range(span - 1, -1, -1):
                running += ending[group][k]
                column[k] = running
            at_risk.append(column)
        return at_risk, events

    def tail(self, cut: int, size: int) -> list[list[float]]:
        """Return the rows ending after `cut` as (time, event, one-hot group)
        records, padded with empty records to `size`."""
        records = []
        for time, group, rows, count in self.lines:
            if time <= cut:
                continue
            flags = [1.0 if g == group else 0.0 for g in range(self.groups)]
            for index in range(rows):
                event = 1.0 if index < count else 0.0
                records.append([float(time), event, *flags])
        if len(records) > size:
            raise ValueError(
                f"this station has {len(records)} rows after the cut, more than "
                f"the {size} at risk in all stations together"
            )
        empty = [float(cut + 1), 0.0] + [0.0] * self.groups
        records += [list(empty) for _ in range(size - len(records))]
        return records


async def _find_cut(
    table: LocalTable, low: int, high: int, min_count: int, secfxp: Any
) -> int:
    """Return the last day in [low, high) on which every group has min_count at risk.

    At `low` every group has (checked before); at `high` none is taken to.
    """
    while high - low > 1:
        step = (high - low) / (PROBES_PER_ROUND + 1)
        days = sorted(
            {low + math.ceil(step * k) for k in range(1, PROBES_PER_ROUND + 1)}
            - {low, high}
        )
        days = [day for day in days if low < day < high]
        values = [count for day in days for count in table.at_risk(day)]
        pooled = _pool(values, secfxp)
        bits = []
        for index in range(len(days)):
            counts = pooled[index * table.groups : (index + 1) * table.groups]
            bit = counts[0] >= min_count
            for count in counts[1:]:
                bit = bit * (count >= min_count)
            bits.append(bit)
        opened = [round(float(bit)) for bit in await mpc.output(bits)]
        for day, bit in zip(days, opened, strict=True):
            if bit:
                low = day
            else:
                high = day
                break
        logger.info("survival cut between day %d and day %d", low, high)
    return low


async def _tail_terms(
    table: LocalTable, cut: int, size: int, time_max: int, secfxp: Any
) -> tuple[list[Any], list[list[Any]]]:
    """Return the secret log-rank score and covariance of the rows after the cut."""
    groups = table.groups
    records = table.tail(cut, size)
    # The records are whole numbers, so they are compared and counted as
    # secure integers just wide enough for the declared times and the record
    # count: a comparison costs about its bit length, and integers need no
    # truncation. Only the counts are converted to fixed point, to divide.
    count = len(records) * len(mpc.parties)
    secint = mpc.SecInt(max(int(time_max), count, 1).bit_length() + 2)
    shared = mpc.input([secint(int(value)) for record in records for value in record])
    width = 2 + groups
    everyone = [
        party[start : start + width]
        for party in shared
        for start in range(0, len(party), width)
    ]
    times = [record[0] for record in everyone]
    one_int = secint(1)
    # later[i][j] = 1 when record j's time is at or after record i's.
    later = [
        [one_int if i == j else times[j] >= times[i] for j in range(count)]
        for i in range(count)
    ]
    # Persons at risk per group at each record's time, and the events tied
    # with it: both comparisons hold exactly when two times are equal. Matrix
    # products need one resharing per entry of the result, not per term.
    flags_int = [record[2:] for record in everyone]
    by_group_int = mpc.matrix_prod(later, flags_int)
    equal = [
        [later[i][j] + later[j][i] - one_int for j in range(count)]
        for i in range(count)
    ]
    events_int = [[record[1]] for record in everyone]
    tied_int = [row[0] for row in mpc.matrix_prod(equal, events_int)]
    converted = mpc.convert(
        [value for row in by_group_int for value in row]
        + tied_int
        + [record[1] for record in everyone]
        + [flag for row in flags_int for flag in row],
        secfxp,
    )
    for number in converted:
        number.integral = True
    at_risk_by_group = [converted[i * groups : (i + 1) * groups] for i in range(count)]
    offset = count * groups
    tied = converted[offset : offset + count]
    events = converted[offset + count : offset + 2 * count]
    flags = [
        converted[
            offset + 2 * count + i * groups : offset + 2 * count + (i + 1) * groups
        ]
        for i in range(count)
    ]
    one = secfxp(1)
    zero = secfxp(0)
    score = [zero for _ in range(groups - 1)]
    covariance = [[zero for _ in range(groups - 1)] for _ in range(groups - 1)]
    for i in range(count):
        at_risk = mpc.sum(at_risk_by_group[i])
        # A non-event record adds nothing; 1 is added to its count so that no
        # division is by 0. An event record has at least itself at risk.
        safe = at_risk + (one - events[i])
        single = safe < 1.5
        inverse = one / safe
        factor = (safe - tied[i]) * events[i] / (safe - one + single)
        for g in range(groups - 1):
            share = at_risk_by_group[i][g] * inverse
            score[g] += events[i] * (flags[i][g] - share)
            for h in range(groups - 1):
                delta = one if g == h else zero
                other = at_risk_by_group[i][h] * inverse
                covariance[g][h] += factor * share * (delta - other)
    return score, covariance


async def survival_and_release(config: dict[str, Any]) -> dict[str, Any]:
    """Run the protocol above; every party calls this with its own table.

    Returns ``{"checks": [...], "values": ... or None}``. Each check is
    ``{"rule": name, "group": index or None, "passed": bool}``; values hold
    ``n``, ``first_day``, ``cut``, ``at_risk`` and ``events`` (per group,
    per day) and, for the log-rank test, ``chi_square``.
    """
    fraction_bits = config["fraction_bits"]
    secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)
    groups = config["groups"]
    min_count = config["min_count"]
    table = LocalTable(config["table"], groups)

    persons = table.persons()
    own = persons if config["mine"] else [0] * groups
    pooled = _pool(persons + own, secfxp)
    bits = []
    checks: list[dict[str, Any]] = []
    for g in range(groups):
        bits.append(pooled[g] >= min_count)
        checks.append({"rule": "min_count", "group": g if groups > 1 else None})
        if config["requester_contributes"]:
            bits.append(pooled[g] - pooled[groups + g] >= min_count)
            checks.append(
                {
                    "rule": "min_count_without_requester",
                    "group": g if groups > 1 else None,
                }
            )
    opened = await mpc.output(bits)
    for check, bit in zip(checks, opened, strict=True):
        check["passed"] = bool(round(float(bit)))
    if not all(check["passed"] for check in checks):
        return {"checks": checks, "values": None}
    n = [round(float(v)) for v in await mpc.output(pooled[:groups])]

    first_day = config["time_min"]
    cut = await _find_cut(table, first_day, config["time_max"] + 1, min_count, secfxp)
    at_risk, events = table.daily(first_day, cut)
    span = cut - first_day + 1
    flat = [v for g in range(groups) for v in at_risk[g] + events[g]]
    sums = [round(float(v)) for v in await mpc.output(_pool(flat, secfxp))]
    pooled_at_risk = [sums[2 * g * span : (2 * g + 1) * span] for g in range(groups)]
    pooled_events = [
        sums[(2 * g + 1) * span : (2 * g + 2) * span] for g in range(groups)
    ]
    values: dict[str, Any] = {
        "n": n,
        "first_day": first_day,
        "cut": cut,
        "at_risk": pooled_at_risk,
        "events": pooled_events,
    }
    if config["kind"] == "logrank":
        values["chi_square"] = await _chi_square(
            table, cut, config["time_max"], pooled_at_risk, pooled_events, secfxp
        )
    return {"checks": checks, "values": values}


async def _chi_square(
    table: LocalTable,
    cut: int,
    time_max: int,
    at_risk: list[list[int]],
    events: list[list[int]],
    secfxp: Any,
) -> float:
    """Return the log-rank statistic: the head's public part plus the tail's."""
    groups = table.groups
    head_score, head_covariance = logrank_terms(at_risk, events)
    remaining = _pool([sum(table.at_risk(cut + 1))], secfxp)[0]
    size = round(float(await mpc.output(remaining)))
    logger.info("log-rank tail: %d persons at risk after day %d", size, cut)
    if size > MAX_TAIL:
        raise ValueError(
            f"{size} persons are at risk after day {cut}, the last day with "
            f"enough persons at risk in every group; the secure log-rank tail "
            f"handles at most {MAX_TAIL}: compare groups of similar size"
        )
    # NOTE: the head's part must stay below 2^31 to fit the tail's numbers,
    # which holds for fewer than 2^31 events in all.
    tail_type = mpc.SecFxp(2 * TAIL_FRACTION_BITS, TAIL_FRACTION_BITS)
    score = [tail_type(v) for v in head_score]
    covariance = [[tail_type(v) for v in row] for row in head_covariance]
    if size:
        tail_score, tail_covariance = await _tail_terms(
            table, cut, size, time_max, tail_type
        )
        score = [a + b for a, b in zip(score, tail_score, strict=True)]
        covariance = [
            [a + b for a, b in zip(row, tail_row, strict=True)]
            for row, tail_row in zip(covariance, tail_covariance, strict=True)
        ]
    k = groups - 1
    augmented = [covariance[i] + [score[i]] for i in range(k)]
    gauss_jordan(augmented)
    statistic = mpc.sum([score[i] * augmented[i][k] for i in range(k)])
    return float(await mpc.output(statistic))
