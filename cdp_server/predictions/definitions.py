"""What a prediction is: its goal, horizon, population and kind, checked when it is created, and the
label the engine computes for it (`docs/predictions.md`)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from cdp_server import _core

DAY_MS = 86_400_000
MIN_HORIZON_DAYS = 7
MAX_HORIZON_DAYS = 180
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_EVENT_NAME = re.compile(r"""^\s*event\(\s*(?:'([^']*)'|"([^"]*)")\s*\)""")


class DefinitionError(ValueError):
    """A definition that cannot be: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class Definition:
    key: str
    # Event streams in the query language (`event('Order Completed').where(...)`), any of which
    # reaching the goal.
    goals: list[str]
    horizon_days: int
    # Churn: the label is that NONE of the goals happened in the horizon.
    churn: bool = False
    # Lifetime value: the label is the revenue of the goals' events over the horizon (a regression).
    ltv: bool = False
    population: str | None = None
    # Profile traits the model reads beside the events (numbers, booleans, numeric strings).
    trait_features: list[str] = field(default_factory=list)
    created_ms: int = 0
    seed: int = 0
    # What became of it: "new", "not_ready" (with `reason`) or "ready".
    state: str = "new"
    reason: str = ""
    trained_ms: int = 0
    scored_ms: int = 0
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "regression" if self.ltv else "classification"

    @property
    def horizon_ms(self) -> int:
        return self.horizon_days * DAY_MS

    def goal_names(self) -> list[str]:
        return [event_name(goal) for goal in self.goals]

    def label(self) -> dict[str, Any]:
        """The engine's `LabelRequest`."""
        if self.ltv:
            return {"horizon_ms": self.horizon_ms, "revenue_of": self.goal_names()}
        return {
            "horizon_ms": self.horizon_ms,
            "condition": goal_condition(self.goals, self.horizon_days),
            "negate": self.churn,
        }

    def trait_names(self) -> list[str]:
        first = f"{self.key}_value" if self.ltv else f"{self.key}_probability"
        return [first, f"{self.key}_percentile", f"{self.key}_decile"]

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def from_bytes(data: bytes) -> Definition:
        return Definition(**json.loads(data))


def event_name(goal: str) -> str:
    """The event name a goal stream starts with."""
    found = _EVENT_NAME.match(goal)
    if not found:
        raise DefinitionError("goal", f"{goal!r} must start with event('Name')")
    return found.group(1) if found.group(1) is not None else found.group(2)


def goal_condition(goals: list[str], horizon_days: int) -> str:
    """The audience condition "reached a goal within the horizon", evaluated at cutoff + horizon."""
    return " OR ".join(f"{goal.strip()}.within({horizon_days} days).count() >= 1" for goal in goals)


def _top_level_calls(text: str) -> list[str]:
    """The names of the calls chained at nesting depth 0 (`.within(` inside a where() is not)."""
    calls, depth, quote = [], 0, ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "." and depth == 0:
            found = re.match(r"\.\s*([a-z_]+)\s*\(", text[i:])
            if found:
                calls.append(found.group(1))
    return calls


def check(definition: Definition) -> Definition:
    """Refuses a definition that cannot be trained, naming the field (`DefinitionError`)."""
    if not KEY.match(definition.key):
        raise DefinitionError("key", "1-64 characters: a lowercase letter, then lowercase letters, digits or _")
    if not MIN_HORIZON_DAYS <= definition.horizon_days <= MAX_HORIZON_DAYS:
        raise DefinitionError(
            "within", f"the horizon must be {MIN_HORIZON_DAYS}-{MAX_HORIZON_DAYS} days, not {definition.horizon_days}"
        )
    if not definition.goals:
        raise DefinitionError("goal", "at least one goal event is required")
    own = set(definition.trait_names())
    for name in definition.trait_features:
        if not name or name in own:
            raise DefinitionError("trait", f"{name!r}: a prediction cannot read its own score")
    if definition.churn and definition.ltv:
        raise DefinitionError("ltv", "a prediction is churn or lifetime value, not both")
    for goal in definition.goals:
        event_name(goal)
        calls = _top_level_calls(goal)
        if set(calls) - {"where", "sources"}:
            raise DefinitionError(
                "goal", f"{goal!r}: only where(...) and sources(...) may follow event(...): the horizon is the window"
            )
        if definition.ltv and calls:
            raise DefinitionError("goal", "a lifetime value sums the revenue of whole event names: no filters")
    try:
        _core.check_query(goal_condition(definition.goals, definition.horizon_days))
    except _core.CoreError as exc:
        raise DefinitionError("goal", str(exc)) from exc
    return definition
