"""What each config field means to a person: its label, help, range or choices, and default.

The config dataclasses declare each field once with `setting(...)`; the
validation, the CLI's `studio train` options and the window's controls all
read that declaration, so a range, a label or a new field is written in one
place and cannot drift between them. Torch-free, like the config itself.

Adding a field: give it `setting(default, label, help, low=..., high=...)` (or
`choices=...`) in its section of `studio.core.config`. Validation, a
`--field-name` option and the range of any bound window control follow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import ConfigError

Choices = tuple[Any, ...] | Callable[[], tuple[Any, ...]]


@dataclass(frozen=True)
class Setting:
    """The metadata of one config field."""

    label: str  # plain words for the window: "Learning rate", not "lr"
    help: str  # one line: what it does, for tooltips and `--help`
    low: float | None = None
    high: float | None = None
    choices: Choices | None = None
    choice_labels: dict[Any, str] = field(default_factory=dict)  # plain words per choice, for the window
    option: str | None = None  # the CLI option when it is not `--field-name`; "" for none
    percent: bool = False  # a 0..1 share the window shows as 0..100 %
    unit: str = ""  # shown after the value: "px", "epochs", "°"
    metavar: str = ""  # the CLI's placeholder for the value, when the type alone does not say it
    auto: Any = None  # a value outside the range that asks the studio to choose (the test share's -1)

    def allowed(self) -> tuple[Any, ...] | None:
        return self.choices() if callable(self.choices) else self.choices


def setting(default: Any = dataclasses.MISSING, label: str = "", help: str = "", *,
            default_factory: Callable[[], Any] | None = None, **meta: Any) -> Any:
    """A dataclass field carrying its `Setting`."""
    info = Setting(label=label, help=help, **meta)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"setting": info})
    return field(default=default, metadata={"setting": info})


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the front ends see it: where it lives, its type, its default and its `Setting`."""

    section: str
    name: str
    kind: str  # "int", "float", "bool" or "str"
    default: Any
    setting: Setting

    @property
    def key(self) -> str:
        """How messages and the window name it: "train.lr"."""
        return f"{self.section}.{self.name}"

    def check(self, value: Any) -> None:
        """Raise `ConfigError` unless `value` has this field's type and lies in its range or choices."""
        s = self.setting
        if s.auto is not None and value == s.auto:
            return
        if self.kind in ("int", "float") and (s.low is not None or s.high is not None):
            low = s.low if s.low is not None else float("-inf")
            high = s.high if s.high is not None else float("inf")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not (low <= value <= high):
                raise ConfigError(self.key, f"{value!r} must be a number between {low} and {high}")
        allowed = s.allowed()
        if allowed is not None and value not in allowed:
            raise ConfigError(self.key, f"{value!r} is not one of {', '.join(str(c) for c in allowed)}")


def section_specs(section: str, kind: type) -> Iterator[FieldSpec]:
    for f in dataclasses.fields(kind):
        info = f.metadata.get("setting") or Setting(label=f.name.replace("_", " ").capitalize(), help="")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        yield FieldSpec(section, f.name, str(f.type), default, info)


def validate_section(obj: Any, section: str) -> None:
    """Check every field of one config section against its metadata."""
    for spec in section_specs(section, type(obj)):
        spec.check(getattr(obj, spec.name))
