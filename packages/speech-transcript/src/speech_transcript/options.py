"""Option values checked while the command line is parsed, so that a bad value is one line
naming the option (argparse's `argument --beam-size: ...`), before any model is loaded."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


def _checked(
    name: str, kind: type, what: str, accept: Callable[[float], bool], outside: str | None = None
) -> Callable[[str], Any]:
    """An argparse type called `name`: `text` as `kind` if `accept` takes it, else "must be
    <what>" (`outside`, if given, for a number out of range)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value != value:  # NaN: named as the unparsable are
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {outside or what}, got {text}")
        return value

    parse.__name__ = name
    return parse


_INF = float("inf")

positive_int = _checked("positive_int", int, "a whole number of at least 1", lambda v: v >= 1)
non_negative_int = _checked(
    "non_negative_int", int, "a whole number of at least 0", lambda v: v >= 0
)
positive_float = _checked("positive_float", float, "a number above 0", lambda v: 0 < v < _INF)
non_negative_float = _checked("non_negative_float", float, "a number of at least 0",
                              lambda v: 0 <= v < _INF)  # fmt: skip


def float_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number in [low, high]."""
    return _checked(f"float_between_{low:g}_{high:g}", float, f"a number from {low:g} to {high:g}",
                    lambda v: low <= v <= high, outside=f"from {low:g} to {high:g}")  # fmt: skip


class FrameContext(argparse.Action):
    """`LEFT RIGHT` encoder frames of attention context (nargs=2, type=non_negative_int): at
    least one side above 0, the rule of NeMo's local attention (`rel_pos_local_attn`)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        left, right = values  # type: ignore[misc]
        if left == 0 and right == 0:
            parser.error(f"argument {option_string}: LEFT and RIGHT cannot both be 0")
        setattr(namespace, self.dest, [left, right])
