"""The converter's one exception type: its message is a complete line for a user."""

from __future__ import annotations


class ConversionError(Exception):
    """A checkpoint that cannot be converted; `str(err)` is one line that says why."""


def one_line(err: BaseException) -> str:
    """A caught exception as part of a one-line message: its type, and its text if any."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
