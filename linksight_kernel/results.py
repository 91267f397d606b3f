"""Results of federated queries: the figures, the n behind each, and the checks.

A :class:`Result` wraps the document the stations agreed on and the hub
released. Its figures are pooled over every station; no station's own part
is ever in it. A blocked result has no figures, only the disclosure checks
and the message of the rule that failed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class Result:
    """A released or blocked result of one request.

    Attributes
    ----------
    request_id
        The hub's id of the request.
    collaboration
        The collaboration the request ran in.
    query
        The query as the stations ran it, in canonical form.
    status
        "released" or "blocked".
    document
        The whole result document the stations produced.
    audit_seq
        Sequence number of the hub's audit record of the release, which
        holds the SHA-256 of the document and each check's outcome.
    """

    request_id: int
    collaboration: str
    query: str
    status: str
    document: dict[str, Any]
    audit_seq: int

    @classmethod
    def from_json(cls, body: dict[str, Any], collaboration: str) -> Result:
        """Build a result from the hub's ``GET /requests/{id}/result`` body."""
        document = body["result"]
        return cls(
            request_id=body["request_id"],
            collaboration=collaboration,
            query=document.get("query", ""),
            status=document.get("status", ""),
            document=document,
            audit_seq=body["audit_seq"],
        )

    @property
    def released(self) -> bool:
        """Whether the figures passed disclosure control and are present."""
        return self.status == "released"

    @property
    def group_by(self) -> list[str]:
        """The grouping columns, in order."""
        return list(self.document.get("group_by", []))

    @property
    def statistics(self) -> list[str]:
        """The statistic columns, such as ``count(*)`` and ``mean(age)``."""
        columns = self.document.get("columns", [])
        # A model's rows are named by the term column, as groups are by theirs;
        # a survival curve's by its group and time, a test's by its name.
        keys = self.group_by
        if self.is_model:
            keys = [*self.group_by, "term"]
        elif self.is_survival:
            keys = [*self.group_by, "time", "test"]
        return [c for c in columns if c not in keys and not c.endswith(".n")]

    @property
    def table(self) -> pd.DataFrame:
        """The statistics and their n, one row per group, as the hub sent them."""
        rows = self.document.get("rows", [])
        # A blocked result has no columns at all, but keeps its grouping.
        columns = self.document.get("columns") or self.group_by
        frame = pd.DataFrame(rows, columns=columns)
        if self.is_model and "term" in frame:
            return frame.set_index("term")
        if self.is_survival:
            keys = [c for c in [*self.group_by, "time", "test"] if c in frame]
            if self.document.get("kind") == "logrank":
                keys = ["test"] if "test" in frame else []
            return frame.set_index(keys) if keys else frame
        return frame.set_index(self.group_by) if self.group_by else frame

    @property
    def is_survival(self) -> bool:
        """Whether the result is a Kaplan-Meier curve or a log-rank test."""
        return self.document.get("kind") in ("km", "logrank")

    @property
    def survival(self) -> dict[str, Any]:
        """A survival result's medians (km), n per group and cut; empty otherwise.

        The cut is the last day on which every group had the minimum count
        of persons at risk: the released curve ends there.
        """
        return dict(self.document.get("survival") or {})

    @property
    def is_model(self) -> bool:
        """Whether the result is a fitted model, with one row per coefficient."""
        return "model" in self.document

    @property
    def model(self) -> dict[str, Any]:
        """The model's formula, n and residual degrees of freedom; empty otherwise."""
        return dict(self.document.get("model") or {})

    @property
    def is_training(self) -> bool:
        """Whether the result is a model trained with Flower (``train(...)``)."""
        return self.document.get("kind") == "train"

    @property
    def history(self) -> pd.DataFrame:
        """A trained model's pooled metrics per exchange; empty otherwise.

        Exchange k shows the model before round k; the last exchange shows
        the trained model. Columns ``test_*`` are on the held-out rows.
        """
        frame = pd.DataFrame(self.document.get("history") or [])
        return frame.set_index("exchange") if "exchange" in frame else frame

    @property
    def holdout(self) -> dict[str, Any]:
        """A trained model's held-out share, seed, n and pooled metrics."""
        return dict(self.document.get("holdout") or {})

    @property
    def differential_privacy(self) -> dict[str, Any]:
        """A trained model's privacy record (epsilon, delta, noise); empty without.

        ``epsilon`` is what the accountant spent over every exchange at
        ``delta``, for one person's row added or removed.
        """
        return dict(self.document.get("differential_privacy") or {})

    @property
    def df(self) -> pd.DataFrame:
        """The statistics, one row per group; for a crosstab, a two-way table.

        For a trained logistic or linear model, the coefficients in the
        columns' units. Empty for a blocked result.
        """
        if self.is_training:
            coefficients = self.document.get("coefficients") or {}
            frame = pd.DataFrame({"coef": pd.Series(coefficients, dtype=float)})
            frame.index.name = "term"
            return frame
        frame = self.table[self.statistics]
        if self.document.get("kind") == "crosstab" and not frame.empty:
            return frame["count(*)"].unstack(self.group_by[1])
        return frame

    @property
    def n(self) -> pd.DataFrame:
        """The number of persons behind each figure of :attr:`df`.

        A count is its own n; a sum, mean or variance has the number of
        non-missing values it rests on. Every coefficient of a model rests
        on the model's n.
        """
        table = self.table
        if self.is_survival and "at_risk" in table:
            return pd.DataFrame(
                {column: table["at_risk"] for column in self.statistics},
                index=table.index,
            )
        if self.is_survival:
            total = sum(self.survival.get("n", {}).values())
            return pd.DataFrame(
                {column: total for column in self.statistics}, index=table.index
            )
        if self.is_model:
            return pd.DataFrame(
                {column: self.model.get("n") for column in self.statistics},
                index=table.index,
            )
        counts = {}
        for column in self.statistics:
            source = f"{column}.n" if f"{column}.n" in table else column
            counts[column] = table[source]
        frame = pd.DataFrame(counts, index=table.index)
        if self.document.get("kind") == "crosstab" and not frame.empty:
            return frame["count(*)"].unstack(self.group_by[1])
        return frame

    @property
    def checks(self) -> pd.DataFrame:
        """Every disclosure check: rule, statistic, cell and whether it passed."""
        rows = []
        for check in self.document.get("checks", []):
            cell = ", ".join(f"{k}={v}" for k, v in check.get("cell", {}).items())
            rows.append(
                {
                    "rule": check.get("rule"),
                    "statistic": check.get("statistic"),
                    "cell": cell or "all rows",
                    "passed": bool(check.get("passed")),
                }
            )
        return pd.DataFrame(rows, columns=["rule", "statistic", "cell", "passed"])

    @property
    def blocked_rule(self) -> str | None:
        """The disclosure rule that blocked the output, or None."""
        blocked = self.document.get("blocked") or {}
        return blocked.get("rule")

    @property
    def blocked_message(self) -> str | None:
        """Which figures failed which rule, and how to change the query."""
        blocked = self.document.get("blocked") or {}
        return blocked.get("message")

    @property
    def stations(self) -> list[str]:
        """The stations that computed the result together."""
        return list(self.document.get("stations", []))

    @property
    def sha256(self) -> str:
        """The SHA-256 that the hub's audit record stores for this document."""
        return str(self.document.get("sha256", ""))

    @property
    def audit_reference(self) -> str:
        """Where the release is recorded: the hub's audit record number."""
        return f"hub audit record {self.audit_seq}"

    def _summary(self) -> str:
        checks = self.checks
        passed = int(checks["passed"].sum())
        outcome = f"{passed} of {len(checks)} disclosure checks passed"
        # A released result with failed checks had figures suppressed, such as
        # an overlap query's counts of invalid identifiers under min_count.
        suppressed = len(checks) - passed
        if self.released and suppressed:
            outcome += (
                f", and the {suppressed} figure(s) that failed are suppressed "
                "(shown as missing)"
            )
        return (
            f"request {self.request_id} in {self.collaboration}: {self.status}; "
            f"{outcome}; {self.audit_reference}"
        )

    def _training_summary(self) -> str:
        """Return a trained model's n, rounds and pooled metrics in one line."""
        document = self.document
        metrics = ", ".join(
            f"{name} {value:.4f}"
            for name, value in (document.get("metrics") or {}).items()
            if value is not None
        )
        line = (
            f"{document.get('family')} model, n = {document.get('n')}, "
            f"{document.get('rounds')} round(s); training {metrics}"
        )
        holdout = self.holdout
        if holdout.get("n"):
            held_out = ", ".join(
                f"{name} {value:.4f}"
                for name, value in (holdout.get("metrics") or {}).items()
                if value is not None
            )
            line += f"; held out (n = {holdout['n']}) {held_out}"
        privacy = self.differential_privacy
        if privacy:
            line += (
                f"; differential privacy epsilon {privacy['epsilon']:.3g}, "
                f"delta {privacy['delta']:.3g} (noisy figures)"
            )
        return line

    def __repr__(self) -> str:
        lines = [self._summary(), f"query: {self.query}"]
        if self.released and self.is_training:
            lines.append(self._training_summary())
            lines.append(self.df.to_string())
        elif self.released and self.is_model:
            model = self.model
            lines.append(f"n = {model.get('n')}, residual df = {model.get('df_resid')}")
            lines.append(self.table.to_string())
        elif self.released and self.is_survival:
            summary = self.survival
            if "median" in summary:
                lines.append(f"median survival: {summary['median']}")
            lines.append(f"released up to day {summary.get('cut')}")
            lines.append(self.table.to_string())
        elif self.released:
            lines.append(self.table.to_string())
        else:
            lines.append(self.blocked_message or "")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [
            f"<p><b>{html.escape(self._summary())}</b><br>",
            f"<code>{html.escape(self.query)}</code></p>",
        ]
        if self.released and self.is_training:
            parts.append(f"<p>{html.escape(self._training_summary())}</p>")
            parts.append(self.df.to_html())
        elif self.released:
            parts.append(self.table.to_html())
            parts.append(
                "<p>Every figure rests on at least "
                f"{self.document.get('min_count')} persons; the <code>.n</code> "
                "columns give the number behind each statistic.</p>"
            )
        else:
            parts.append(f"<p>{html.escape(self.blocked_message or '')}</p>")
            failed = self.checks[~self.checks["passed"]]
            parts.append(failed.to_html(index=False))
        return "".join(parts)

    def plot(
        self, statistic: str | None = None, ax: Axes | None = None, **kwargs: Any
    ) -> Axes:
        """Draw one statistic as a bar per group, with the n above each bar.

        A crosstab is drawn as grouped bars of its two-way table. Extra
        keyword arguments go to :meth:`pandas.Series.plot.bar`.

        Parameters
        ----------
        statistic
            The column to draw, such as ``mean(age)``; by default the first.
        ax
            The axes to draw on; by default a new figure's.

        Raises
        ------
        ValueError
            If the result was blocked, so there is nothing to draw, or
            `statistic` is not one of its columns.
        """
        if not self.released:
            raise ValueError(
                f"request {self.request_id} was blocked by disclosure control "
                f"(rule {self.blocked_rule}), so it has no figures to plot; "
                "change the query as its message says"
            )
        import matplotlib.pyplot as plt

        if self.is_model:
            return self._plot_coefficients(ax, **kwargs)
        if self.document.get("kind") == "logrank":
            raise ValueError(
                f"request {self.request_id} is a log-rank test, a single "
                "statistic with no curve; plot the curves of the same query "
                "with km(...) instead of logrank(...)"
            )
        if self.is_survival:
            return self._plot_survival(ax, **kwargs)
        column = statistic or self.statistics[0]
        if column not in self.statistics:
            raise ValueError(
                f"{column!r} is not a statistic of request {self.request_id}; "
                f"choose one of {', '.join(self.statistics)}"
            )
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        frame = self.df
        if self.document.get("kind") == "crosstab":
            frame.plot.bar(ax=ax, **kwargs)
            ax.set_ylabel("count")
            ax.legend(title=self.group_by[1])
        else:
            series = frame[column]
            series.plot.bar(ax=ax, **kwargs)
            ax.set_ylabel(column)
            counts = self.n[column]
            for index, (value, count) in enumerate(zip(series, counts, strict=True)):
                ax.annotate(
                    f"n={count}",
                    (index, value),
                    ha="center",
                    va="bottom",
                    fontsize="small",
                )
        ax.set_title(self.query, fontsize="small")
        if not self.group_by:
            ax.set_xticklabels([""])
        ax.figure.tight_layout()
        return ax

    def _plot_coefficients(self, ax: Axes | None, **kwargs: Any) -> Axes:
        """Draw each coefficient but the intercept with its 95% interval."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        frame = self.df.drop(index="Intercept", errors="ignore")
        positions = list(range(len(frame)))
        errors = [
            frame["coef"] - frame["ci_lower"],
            frame["ci_upper"] - frame["coef"],
        ]
        ax.errorbar(frame["coef"], positions, xerr=errors, fmt="o", capsize=3, **kwargs)
        ax.axvline(0.0, color="grey", linewidth=0.8)
        ax.set_yticks(positions, list(frame.index))
        ax.set_xlabel(f"coefficient with 95% interval (n={self.model.get('n')})")
        ax.set_title(self.query, fontsize="small")
        ax.figure.tight_layout()
        return ax

    def _plot_survival(self, ax: Axes | None, **kwargs: Any) -> Axes:
        """Draw each group's Kaplan-Meier curve as steps, with its 95% band."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        frame = pd.DataFrame(self.document.get("rows", []))
        group = self.group_by[0] if self.group_by else None
        labels = list(self.survival.get("n", {"": 0}))
        for label in labels:
            rows = frame[frame[group].astype(str) == label] if group else frame
            # Every curve starts at 1 at time 0, before the first event.
            times = [0, *rows["time"]]
            name = f"{group} = {label}" if group else "all"
            (line,) = ax.step(
                times, [1.0, *rows["survival"]], where="post", label=name, **kwargs
            )
            ax.fill_between(
                times,
                [1.0, *rows["ci_lower"]],
                [1.0, *rows["ci_upper"]],
                step="post",
                alpha=0.2,
                color=line.get_color(),
            )
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel(
            f"{self.survival.get('time', 'time')} (released up to "
            f"{self.survival.get('cut')})"
        )
        ax.set_ylabel("survival probability")
        ax.legend()
        ax.set_title(self.query, fontsize="small")
        ax.figure.tight_layout()
        return ax
