"""Numbers and counts as a person says them: "3.4 million", "1 class folder", "1/10 of the rate".

Shared by the window, the CLI and the run log so the same quantity reads the same everywhere.
"""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """"1 image", "0 images", "2 class folders": never "image(s)"."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def plain_number(n: int) -> str:
    """Large counts rounded the way people say them: 5,124 · 312 thousand · 3.4 million."""
    if n < 100_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{round(n / 1000):,} thousand"
    value = n / 1_000_000
    return f"{value:.1f} million" if value < 100 else f"{round(value):,} million"


def fraction(scale: float) -> str:
    """A rate multiplier in words: 0.1 → "1/10 of", 1 → "the full", 0.25 → "1/4 of", 0.3 → "0.3 ×"."""
    if scale == 1:
        return "the full"
    if 0 < scale < 1 and abs(1 / scale - round(1 / scale)) < 1e-6:
        return f"1/{round(1 / scale)} of the"
    return f"{scale:g} × the"
