"""Speaker turns as text: RTTM, JSON, or NeMo's `diarize()` lines."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mlx_diarization import Turn
from speech_transcript.speakers import named_turns

FORMATS = ("rttm", "json", "txt")
EXTENSIONS = {"rttm": "rttm", "json": "json", "txt": "txt"}


def render(turns: Sequence[Turn], source: str, fmt: str) -> str:
    """`rttm`: one SPEAKER line per turn (file id `source`); `json`: `{"source", "turns"}`;
    `txt`: NeMo's `diarize()` lines ("start end speaker_k"), speaker by speaker."""
    if fmt == "rttm":
        return "".join(turn.rttm(source) + "\n" for turn in named_turns(turns))
    if fmt == "json":
        items = [{"start": t.start, "end": t.end, "speaker": f"speaker_{t.speaker}"} for t in turns]
        return json.dumps({"source": source, "turns": items}) + "\n"
    if fmt == "txt":
        return "".join(turn.line + "\n" for turn in turns)
    raise ValueError(f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}")
