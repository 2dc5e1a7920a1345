"""The user's rule for images that belong together, checked without reading an image.

A rule is "folder" / "folder:N" (the sub-folder N levels below the class folder) or a file-name
pattern with one group. It lives apart from the split itself so that the config can refuse a bad
rule when it is validated, before a run starts, without importing the splitting machinery.
"""

from __future__ import annotations

import re

from studio.core.errors import ConfigError

OPTION = "group-by"


class GroupingError(ConfigError):
    """The grouping the user asked for cannot be applied; the message names the option."""

    def __init__(self, message: str) -> None:
        super().__init__(OPTION, message)


def describe_rule(rule: str) -> str:
    level = folder_level(rule)
    if level:
        return "sub-folder" if level == 1 else f"sub-folder level {level}"
    return f"file-name pattern {rule}" if rule else "nothing"


def folder_level(rule: str) -> int:
    """1 for "folder", N for "folder:N", 0 when the rule is a file-name pattern or empty."""
    if rule == "folder":
        return 1
    if rule.startswith("folder:") and rule[7:].isdigit() and int(rule[7:]) >= 1:
        return int(rule[7:])
    return 0


def check_rule(rule: str) -> None:
    """Refuse a rule that could never work, before any image is read."""
    if not rule or folder_level(rule):
        return
    if rule.startswith("folder:"):
        raise GroupingError(f"{rule!r}: give folder or folder:N with N a level of 1 or more below the class folder")
    try:
        compiled = re.compile(rule)
    except re.error as exc:
        raise GroupingError(f"{rule!r} is not a valid pattern ({exc}); for example ^(P\\d+)_") from None
    if compiled.groups != 1:
        raise GroupingError(f"{rule!r} has {compiled.groups} bracketed groups; it needs exactly one, the part of "
                            "the file name that names the unit, as in ^(P\\d+)_")
