"""Collaboration rules and their evaluation, shared by the hub and stations.

The hub checks each submitted query against its collaboration's rules; each
station checks the signed task again against the same rules and against its
own local policy, which may only be stricter.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from linksight.query import QuerySpec
from linksight.schema import DatasetSchema

ANALYSES = (
    "aggregate",
    "crosstab",
    "overlap",
    "ols",
    "logit",
    "km",
    "logrank",
    "train",
)


class CollaborationRules(BaseModel):
    """The rules a collaboration's members agreed on."""

    min_count: int = Field(
        default=10, ge=1, description="minimum persons behind every released figure"
    )
    min_stations: int = Field(
        default=3, ge=3, description="minimum stations holding the dataset queried"
    )
    allowed_analyses: list[str] = Field(default_factory=lambda: list(ANALYSES))
    max_group_levels: int = Field(
        default=40, ge=1, description="maximum cells in a grouped output"
    )
    min_residual_df: int = Field(
        default=10, ge=1, description="minimum residual degrees of freedom n - p"
    )
    max_parameter_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="maximum number of model parameters as a fraction of n",
    )
    min_level_count: int = Field(
        default=10,
        ge=1,
        description="minimum persons at every level of a binary model outcome, "
        "of a condition term and of every C() term, the reference level included",
    )
    dominance_n: int = Field(
        default=2,
        ge=1,
        le=5,
        description="dominance (n, k) rule: the n largest contributions to a sum "
        "may make up at most dominance_k of its total",
    )
    dominance_k: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="dominance (n, k) rule: the largest share of a sum's total "
        "that its n largest contributions may have; 1 turns the rule off",
    )
    p_percent: float = Field(
        default=0.10,
        ge=0,
        lt=1,
        description="p% rule: the total minus the two largest contributions must "
        "be at least this fraction of the largest; 0 turns the rule off",
    )
    differencing_window: int = Field(
        default=20,
        ge=0,
        le=200,
        description="how many earlier released queries on the same dataset a new "
        "aggregate query is checked against for differencing; 0 turns it off",
    )
    overlapping_filters_window: int = Field(
        default=10,
        ge=0,
        le=30,
        description="how many of the newest queries in the differencing window "
        "are combined in pairs with a new aggregate query to check that no "
        "three released counts single out fewer than min_count persons; 0 "
        "turns it off",
    )
    requires_approval: bool = True
    max_requests: int | None = Field(
        default=None,
        ge=1,
        description="query budget: requests per scientist per budget period; "
        "None for no limit",
    )
    budget_period_days: int = Field(
        default=30, ge=1, description="length of the budget period in days"
    )
    max_dp_epsilon: float | None = Field(
        default=None,
        ge=0.01,
        le=100,
        description="differential privacy for federated training: the largest "
        "dp_epsilon a train(...) request may set, and every train request must "
        "set one; None lets requests train without differential privacy",
    )

    @field_validator("allowed_analyses")
    @classmethod
    def _check_analyses(cls, analyses: list[str]) -> list[str]:
        unknown = [name for name in analyses if name not in ANALYSES]
        if unknown:
            raise ValueError(
                f"unknown {_name_list(unknown, ANALYSES, 'analysis', 'analyses')}; "
                f"the analyses are: {', '.join(ANALYSES)}"
            )
        return analyses


class RuleChangeError(ValueError):
    """A rule change names an unknown rule or gives a rule an invalid value."""


def _name_list(
    names: list[str], known: tuple[str, ...] | list[str], singular: str, plural: str
) -> str:
    """Describe `names` for an error, each with the closest of `known` if any."""
    described = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        described.append(f"{name!r}{hint}")
    return f"{singular if len(names) == 1 else plural} {', '.join(described)}"


def apply_rule_changes(
    current: dict[str, Any], changes: dict[str, Any]
) -> CollaborationRules:
    """Return the rules `current` with `changes` applied, after checking both.

    Raises
    ------
    RuleChangeError
        If `changes` is empty, names a rule that does not exist (the
        message suggests the closest name and lists every rule), or gives a
        rule an invalid value (the message names the rule, the value and
        the constraint).
    """
    names = list(CollaborationRules.model_fields)
    if not changes:
        raise RuleChangeError(
            "the change names no rule; give at least one RULE=VALUE, with RULE "
            f"one of: {', '.join(names)}"
        )
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise RuleChangeError(
            f"unknown {_name_list(unknown, names, 'rule', 'rules')}; the rules "
            f"are: {', '.join(names)}"
        )
    try:
        return CollaborationRules.model_validate({**current, **changes})
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False):
            rule = str(problem["loc"][0]) if problem["loc"] else "rules"
            value = changes.get(rule, problem.get("input"))
            message = problem["msg"]
            if problem["type"] == "value_error":
                message = str(problem["ctx"]["error"])
            problems.append(f"{rule}={value!r}: {message}")
        raise RuleChangeError(
            f"invalid rules: {'; '.join(problems)}. A list is written as "
            'JSON, such as allowed_analyses=\'["aggregate", "crosstab"]\'; '
            "`linksight rules show` lists the current values"
        ) from error


@dataclass(frozen=True)
class RuleViolation:
    """A broken rule: its name, what broke it, and how to fix the query."""

    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """Return the violation as JSON-ready fields."""
        return {"rule": self.rule, "message": self.message}


def check_query(
    spec: QuerySpec,
    schema: DatasetSchema,
    rules: CollaborationRules,
    station_count: int,
    stations: list[str] | None = None,
) -> RuleViolation | None:
    """Return the first rule that `spec` breaks, or None if it may run.

    `schema` is the queried dataset's schema and `station_count` the number
    of stations holding it in the collaboration. `stations`, when given,
    names them, and the stations an overlap query lists in AT must be among
    them.
    """
    if spec.kind not in rules.allowed_analyses:
        return RuleViolation(
            "allowed_analyses",
            f"analysis {spec.kind!r} is not allowed in this collaboration; "
            f"allowed: {', '.join(rules.allowed_analyses)}",
        )
    if station_count < rules.min_stations and spec.joins:
        return RuleViolation(
            "min_stations",
            f"the join of datasets {', '.join(spec.datasets)} has "
            f"{station_count} station(s) in the collaboration but needs at least "
            f"{rules.min_stations}; a collaboration with fewer stations cannot "
            "run a join",
        )
    if station_count < rules.min_stations:
        return RuleViolation(
            "min_stations",
            f"dataset {spec.dataset!r} is held by {station_count} station(s) but "
            f"the collaboration requires at least {rules.min_stations}; query a "
            "dataset that more stations hold",
        )
    if spec.kind == "overlap":
        violation = _check_lists(spec, stations, station_count)
        if violation is not None:
            return violation
    if spec.kind == "train":
        violation = _check_training(spec, schema) or _check_privacy(spec, rules)
        if violation is not None:
            return violation
    for column, uses in sorted(spec.columns_used().items()):
        try:
            declared = schema.column(column)
        except KeyError:
            return RuleViolation(
                "known_columns",
                f"column {column!r} is not in dataset {spec.dataset!r}",
            )
        if declared.role == "identifier" and uses != {"link"}:
            other = sorted(uses - {"link"})
            return RuleViolation(
                "identifier_use",
                f"column {column!r} is an identifier and may not be used as "
                f"{' or '.join(other)}; it may only be the argument of overlap(id)",
            )
        if "link" in uses and declared.role != "identifier":
            return RuleViolation(
                "identifier_use",
                f"column {column!r} has role {declared.role}; overlap(id) "
                "compares only a column declared with role = 'identifier'",
            )
        if "output" in uses and not declared.is_numeric:
            return RuleViolation(
                "numeric_output",
                f"column {column!r} has type {declared.type}; statistics need a "
                "numeric column",
            )
        if "covariate" in uses and not declared.is_numeric:
            return RuleViolation(
                "numeric_output",
                f"column {column!r} has type {declared.type}; a model term needs "
                f"a numeric column, or C({column}) for a categorical one",
            )
        if "factor" in uses and declared.type != "categorical":
            return RuleViolation(
                "categorical_groups",
                f"column {column!r} has type {declared.type}; C() takes only "
                "categorical columns",
            )
        if "group_by" in uses and declared.type != "categorical":
            return RuleViolation(
                "categorical_groups",
                f"column {column!r} has type {declared.type}; only categorical "
                "columns can be grouped on",
            )
    if spec.kind == "logit":
        violation = _check_binary_response(spec, schema)
        if violation is not None:
            return violation
    if spec.survival is not None:
        time = schema.column(spec.survival.time)
        if time.type != "integer" or (time.min or 0) < 0:
            return RuleViolation(
                "survival_time",
                f"column {time.name!r} is not a follow-up time: {spec.kind}() "
                "needs an integer column declared with min >= 0, such as days "
                "since diagnosis",
            )
    cells = 1
    for column in spec.group_by:
        cells *= len(schema.column(column).levels or [])
    if cells > rules.max_group_levels:
        return RuleViolation(
            "max_group_levels",
            f"the grouping makes {cells} cells, more than the "
            f"{rules.max_group_levels} allowed; group on fewer or coarser columns",
        )
    return None


def _check_training(spec: QuerySpec, schema: DatasetSchema) -> RuleViolation | None:
    from linksight.federated import TrainingError, check_hyperparameters

    assert spec.training is not None and spec.model is not None
    family = spec.training.family
    try:
        check_hyperparameters(family, spec.training.hyperparameters)
    except TrainingError as error:
        return RuleViolation("approved_models", str(error))
    try:
        response = schema.column(spec.model.response)
    except KeyError:
        return None  # reported as known_columns
    # A condition such as (num > 0) is a two-level response.
    binary = spec.model.outcome is not None or (
        response.type == "categorical" and len(response.levels or []) == 2
    )
    if family in ("logistic", "mlp") and not binary:
        return RuleViolation(
            "approved_models",
            f"{family} needs a categorical response with two levels, but "
            f"{spec.model.response!r} has type {response.type}; use linear for "
            "a numeric response",
        )
    if family == "linear" and not response.is_numeric:
        return RuleViolation(
            "approved_models",
            f"linear needs a numeric response, but {spec.model.response!r} has "
            f"type {response.type}; use logistic for a two-level response",
        )
    return None


def _check_privacy(spec: QuerySpec, rules: CollaborationRules) -> RuleViolation | None:
    """Check a training request's dp_epsilon against the rule max_dp_epsilon."""
    assert spec.training is not None
    limit = rules.max_dp_epsilon
    epsilon = spec.training.dp_epsilon
    if limit is None:
        return None
    if epsilon is None:
        return RuleViolation(
            "max_dp_epsilon",
            "this collaboration trains models only under differential privacy "
            f"with dp_epsilon at most {limit:g}; add dp_epsilon = {limit:g} (or "
            "less) to the train(...) settings",
        )
    if epsilon > limit:
        return RuleViolation(
            "max_dp_epsilon",
            f"dp_epsilon = {epsilon:g} is above this collaboration's limit of "
            f"{limit:g}; set dp_epsilon to {limit:g} or less",
        )
    return None


def _check_binary_response(
    spec: QuerySpec, schema: DatasetSchema
) -> RuleViolation | None:
    """Check that a logistic regression's response takes the values 0 and 1 only.

    A condition such as ``(num > 0)`` always does, and so does an integer
    column declared with min 0 and max 1.
    """
    model = spec.model
    if model is None or model.outcome is not None:
        return None
    column = schema.column(model.response)
    if column.type == "integer" and column.min == 0 and column.max == 1:
        return None
    return RuleViolation(
        "binary_response",
        f"column {model.response!r} is not binary, so logit() cannot model it; "
        f"write a condition as the response, as in ({model.response} > 0), "
        "which logit() models as 1 where it holds and 0 elsewhere",
    )


def _check_lists(
    spec: QuerySpec, stations: list[str] | None, station_count: int
) -> RuleViolation | None:
    if stations is not None:
        unknown = [name for name in spec.lists if name not in stations]
        if unknown:
            return RuleViolation(
                "known_stations",
                f"station(s) {', '.join(unknown)} in AT do not hold dataset "
                f"{spec.dataset!r}; stations holding it: {', '.join(stations)}",
            )
    if not spec.lists and station_count < 2:
        return RuleViolation(
            "min_lists",
            "overlap(id) compares at least two lists, but only "
            f"{station_count} station holds dataset {spec.dataset!r}",
        )
    return None
