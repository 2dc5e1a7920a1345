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


def stage_sentence(number: int, stages: int, part: str, trainable: int, total: int, *, pretrained: bool,
                   backbone_scale: float, features_once: bool) -> str:
    """What learns from now on, said when it starts, so the log never repeats a stage that is over.

    "Stage 2 of 2: all 3.4 million parameters learn now, the pretrained part at 1/10 of the rate."
    """
    prefix = f"Stage {number} of {stages}: " if stages > 1 else ""
    if part == "head":
        text = (f"only the new last layer learns ({plain_number(trainable)} of {plain_number(total)} parameters); "
                "the pretrained part stays as it is")
        if features_once:
            text += ", so its features are computed once per image and these epochs are quick"
    elif trainable < total:
        text = (f"{plain_number(trainable)} of {plain_number(total)} parameters learn (the last block and the new "
                "layer); the rest keep their pretrained values")
    else:
        text = f"all {plain_number(total)} parameters learn" + (" now" if number > 1 else "")
        if pretrained and backbone_scale != 1:
            text += f", the pretrained part at {fraction(backbone_scale)} rate"
    return f"{prefix}{text[:1].upper() if not prefix else text[:1]}{text[1:]}."


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(exponent: int) -> str:
    """"× 10⁻⁴": an axis unit a person reads, instead of matplotlib's "1e-4" offset text."""
    return f"× 10{str(exponent).translate(_SUPERSCRIPT)}"


def axis_scale(values: list[float]) -> tuple[float, str]:
    """(divisor, unit) so small values such as learning rates read as 1–999 on an axis: (1e-4, "× 10⁻⁴").

    Values from 0.01 up need no unit: (1.0, "").
    """
    import math

    peak = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if peak == 0 or peak >= 0.01:
        return 1.0, ""
    exponent = math.floor(math.log10(peak))
    return 10.0 ** exponent, power_of_ten(exponent)
