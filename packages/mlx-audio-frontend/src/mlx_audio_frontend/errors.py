"""Errors the front end raises: each carries one line meant for a user, not a traceback."""

from __future__ import annotations


class AudioError(ValueError):
    """Audio that cannot be turned into samples; `str(err)` is a complete one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The path does not exist, or names a directory."""


class AudioDecodeError(AudioError):
    """The bytes are not audio any installed decoder understands, or they are corrupt or truncated."""


class MissingDecoderError(AudioDecodeError):
    """The format needs a decoder that is not installed (ffmpeg)."""


class EmptyAudioError(AudioError):
    """The input decodes to zero samples."""


class InvalidSamplesError(AudioError):
    """Samples that no model should see: NaN or infinite values, wrong shape or dtype."""
