"""Option values checked while the command line is parsed, so that a bad value is one line
naming the option (argparse's `argument --beam-size: ...`), before any model is loaded."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line errors: `<prog>: error: <message>` on stderr and exit 2, without
    the usage block argparse prints first (`--help` still shows it)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2)


def _number(text: str, kind: type, what: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and value != value:  # NaN passes every comparison below
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = _number(text, int, "a whole number of at least 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    value = _number(text, int, "a whole number of at least 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (seconds, durations)."""
    value = _number(text, float, "a number above 0")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number of at least 0."""
    value = _number(text, float, "a number of at least 0")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value


def float_between(low: float, high: float):
    """An argparse type: a number in [low, high]."""

    def between(text: str) -> float:
        value = _number(text, float, f"a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
        return value

    between.__name__ = f"float_between_{low:g}_{high:g}"
    return between


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
