"""Fonts for figures: class names in any script render as letters, not boxes, with the fonts the system has.

matplotlib draws with DejaVu Sans, which has Latin, Greek and Cyrillic but no Chinese, Japanese,
Korean, Arabic, Hebrew, Devanagari or Thai. Since matplotlib 3.6 a text falls back, glyph by glyph,
through the families listed in `font.sans-serif`, so it is enough to list, after DejaVu Sans, the
fonts this computer has that cover other scripts. Nothing is downloaded or bundled: where no such
font exists the names still draw as boxes, and `missing_glyphs` says which characters, so the
window can say so in words.

Debian's `fonts-noto-cjk` installs "Noto Sans CJK JP" (and SC, TC, KR, HK: one file holding all
four, whose default glyph forms are Japanese) and "Noto Serif CJK …"; other systems have their own
(Microsoft YaHei, PingFang, Hiragino, Malgun Gothic, WenQuanYi, Droid Sans Fallback).
"""

from __future__ import annotations

import threading
from functools import lru_cache

# Families known to cover scripts DejaVu Sans lacks, in order of preference (the first that has a
# glyph wins). Simplified Chinese first among the CJK variants: most CJK class names seen are Chinese.
FALLBACK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans CJK KR", "Noto Sans SC",
    "Source Han Sans SC", "Source Han Sans", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Hiragino Sans",
    "Yu Gothic", "MS Gothic", "Malgun Gothic", "Apple SD Gothic Neo", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Droid Sans Fallback", "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans Devanagari", "Noto Sans Thai",
    "Noto Sans Bengali", "Noto Sans Tamil", "Noto Sans Armenian", "Noto Sans Georgian", "Noto Sans Ethiopic",
    "Arial Unicode MS", "Segoe UI", "Tahoma", "Noto Sans", "FreeSans",
)
_lock = threading.Lock()


# File-name stems of those families, to find a font installed after matplotlib cached its font list.
FALLBACK_FILES = (
    "notosanscjk", "sourcehansans", "msyh", "pingfang", "hiragino", "yugoth", "msgothic", "malgun",
    "applesdgothicneo", "wqy-zenhei", "wqy-microhei", "droidsansfallback", "notosansarabic", "notosanshebrew",
    "notosansdevanagari", "notosansthai", "notosansbengali", "notosanstamil", "arialuni",
)


@lru_cache(maxsize=1)
def available_fallbacks() -> tuple[str, ...]:
    """The fallback families installed here, in preference order.

    matplotlib keeps a cached list of the system's fonts and does not notice fonts installed after
    it was made; when that list has no fallback, the system's font files are looked through once
    (by file name) and the matching ones are added for this process.
    """
    from matplotlib import font_manager

    def known() -> tuple[str, ...]:
        installed = {entry.name for entry in font_manager.fontManager.ttflist}
        return tuple(name for name in FALLBACK_FAMILIES if name in installed)

    found = known()
    if not any("CJK" in name or "Hei" in name or "Gothic" in name for name in found):
        for path in font_manager.findSystemFonts(fontext="ttf"):
            stem = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
            if stem.startswith(FALLBACK_FILES) and "bold" not in stem:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue  # an unreadable font file is no reason to fail a figure
        found = known()
    return found


def use_system_fonts() -> tuple[str, ...]:
    """List the installed fallbacks after matplotlib's own sans-serif font; idempotent, thread-safe.

    Returns the sans-serif list now in force.
    """
    import matplotlib

    with _lock:
        current = list(matplotlib.rcParams["font.sans-serif"])
        head = [name for name in current if name not in FALLBACK_FAMILIES][:1] or ["DejaVu Sans"]
        wanted = head + [name for name in available_fallbacks() if name not in head]
        if current[:len(wanted)] != wanted:
            matplotlib.rcParams["font.sans-serif"] = wanted + [n for n in current if n not in wanted]
        # Glyph fallback runs through the families named in font.family; the generic "sans-serif"
        # stands for one font only, so the fallbacks are named there too.
        matplotlib.rcParams["font.family"] = [*wanted, "sans-serif"]
        return tuple(matplotlib.rcParams["font.sans-serif"])


def missing_glyphs(text: str) -> str:
    """The characters of `text` that no configured font can draw (they would show as boxes)."""
    from matplotlib import font_manager

    families = use_system_fonts()
    charmaps = []
    for family in families:
        path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False) \
            if _installed(family) else None
        if path:
            charmaps.append(_charmap(path))
    return "".join(sorted({ch for ch in text if not ch.isspace() and not any(ord(ch) in cm for cm in charmaps)}))


def _installed(family: str) -> bool:
    from matplotlib import font_manager

    return any(entry.name == family for entry in font_manager.fontManager.ttflist)


@lru_cache(maxsize=32)
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(path).get_charmap())
