"""Declarative state machines, pure: states, transitions, who may fire them, and SLA clocks.

The connection application, field job and care ticket processes are declared with this; the
database side (`citygas.platform.workflow`) binds a definition to a row and writes the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta


class WorkflowError(ValueError):
    """A transition that the definition does not allow from the current state."""


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    target: str
    permission: str | None = None
    requires_reason: bool = False
    label: str = ""


@dataclass(frozen=True)
class StateSpec:
    """What being in a state means for the activity list: whose queue it sits in and for how long."""

    name: str
    label: str = ""
    final: bool = False
    queue_role: str | None = None  # the role whose activity list shows items in this state
    sla: timedelta | None = None  # due time measured from entering the state


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    initial: str
    states: tuple[StateSpec, ...]
    transitions: tuple[Transition, ...]
    _by_state: dict[str, StateSpec] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, Transition] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_state = {s.name: s for s in self.states}
        if len(by_state) != len(self.states):
            raise WorkflowError(f"{self.name}: duplicate state")
        if self.initial not in by_state:
            raise WorkflowError(f"{self.name}: initial state {self.initial!r} is not declared")
        by_name: dict[str, Transition] = {}
        for t in self.transitions:
            if t.name in by_name:
                raise WorkflowError(f"{self.name}: duplicate transition {t.name!r}")
            unknown = (set(t.sources) | {t.target}) - set(by_state)
            if unknown:
                raise WorkflowError(f"{self.name}.{t.name}: unknown states {sorted(unknown)}")
            if any(by_state[s].final for s in t.sources):
                raise WorkflowError(f"{self.name}.{t.name}: leaves a final state")
            by_name[t.name] = t
        object.__setattr__(self, "_by_state", by_state)
        object.__setattr__(self, "_by_name", by_name)

    def state(self, name: str) -> StateSpec:
        try:
            return self._by_state[name]
        except KeyError:
            raise WorkflowError(f"{self.name}: unknown state {name!r}") from None

    def transition(self, name: str) -> Transition:
        try:
            return self._by_name[name]
        except KeyError:
            raise WorkflowError(f"{self.name}: unknown transition {name!r}") from None

    def check(self, name: str, current: str, *, reason: str | None) -> Transition:
        """The transition to fire, or `WorkflowError` saying why not."""
        t = self.transition(name)
        if current not in t.sources:
            raise WorkflowError(
                f"cannot {t.label or t.name} from {self.state(current).label or current}; "
                f"allowed from {', '.join(sorted(t.sources))}"
            )
        if t.requires_reason and not (reason and reason.strip()):
            raise WorkflowError(f"{t.label or t.name} needs a reason")
        return t

    def available(self, current: str) -> list[Transition]:
        return [t for t in self.transitions if current in t.sources]


def workflow(
    name: str, *, initial: str, states: Iterable[StateSpec], transitions: Iterable[Transition]
) -> WorkflowDefinition:
    return WorkflowDefinition(
        name=name, initial=initial, states=tuple(states), transitions=tuple(transitions)
    )


def t(
    name: str,
    sources: str | Iterable[str],
    target: str,
    *,
    permission: str | None = None,
    requires_reason: bool = False,
    label: str = "",
) -> Transition:
    """Shorthand for declaring a transition."""
    src = frozenset([sources]) if isinstance(sources, str) else frozenset(sources)
    return Transition(name, src, target, permission, requires_reason, label)
