"""The app's error type: one line, meant for stderr."""

from __future__ import annotations


class ParakeetError(Exception):
    """Something a user must fix (model, input, output); `str(err)` is one complete line."""
