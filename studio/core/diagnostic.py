"""One finding about a run, in plain words: shared by the diagnostics of learning and of leaky splits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Diagnostic:
    severity: str  # "error", "warning" or "info"
    title: str
    detail: str
    advice: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
