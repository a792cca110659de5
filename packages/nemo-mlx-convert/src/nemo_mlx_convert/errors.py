"""The converter's one exception type: its message is a complete line for a user."""

from __future__ import annotations


class ConversionError(Exception):
    """A checkpoint that cannot be converted; `str(err)` is one line that says why."""
