"""Timed transcripts and their writers, shared by the Parakeet and Canary apps; their shared
command-line pieces are in `speech_transcript.cli` and `speech_transcript.precision`."""

from .files import check_writable, write_atomically
from .model import Segment, SpeakerTurn, TimedToken, Transcript, Word, seconds_at
from .segmenting import SegmentLimits, resegment
from .writers import FORMATS, TranscriptJSON, formats_for, render, to_json_model

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "Segment",
    "SegmentLimits",
    "SpeakerTurn",
    "TimedToken",
    "Transcript",
    "TranscriptJSON",
    "Word",
    "check_writable",
    "formats_for",
    "render",
    "resegment",
    "seconds_at",
    "to_json_model",
    "write_atomically",
]
