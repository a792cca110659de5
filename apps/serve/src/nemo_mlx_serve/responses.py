"""A transcript in each of OpenAI's `response_format`s, and as a server-sent event stream.

Times and texts are the CLI's own: words and segments come from `speech_transcript`'s JSON
model (times in seconds, rounded to the millisecond as `--output-format json` writes them),
SRT and VTT from its writers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Literal

from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from speech_transcript import Transcript
from speech_transcript.writers import render, to_json_model

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]


def verbose_json(
    transcript: Transcript, task: str, language: str, granularities: Iterable[Granularity]
) -> dict:
    """OpenAI's verbose transcription object. Fields Whisper has and these models do not
    (log-probabilities, compression ratio, no-speech probability, seek, temperature) are
    written as zero so that clients that read them still parse."""
    body = to_json_model(transcript)
    granularities = set(granularities) or {"segment"}
    out: dict = {
        "task": task,
        "language": language,
        "duration": body.duration,
        "text": body.text,
    }
    if "word" in granularities:
        out["words"] = [_with_speaker({"word": w.text, "start": w.start, "end": w.end}, w.speaker)
                        for w in body.words]  # fmt: skip
    if "segment" in granularities:
        out["segments"] = [
            _with_speaker(
                {
                    "id": index,
                    "seek": 0,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": 0.0,
                    "compression_ratio": 0.0,
                    "no_speech_prob": 0.0,
                },
                s.speaker,
            )
            for index, s in enumerate(body.segments)
        ]
    return out


def _with_speaker(item: dict, speaker: str | None) -> dict:
    """`item` with its `speaker` where the request asked for speakers (`diarize`)."""
    return item if speaker is None else {**item, "speaker": speaker}


def respond(
    transcript: Transcript,
    response_format: ResponseFormat,
    *,
    task: str,
    language: str,
    granularities: Iterable[Granularity] = (),
) -> Response:
    if response_format == "json":
        return JSONResponse({"text": transcript.text})
    if response_format == "text":
        return PlainTextResponse(render(transcript, "txt"))
    if response_format in ("srt", "vtt"):
        media = "text/vtt" if response_format == "vtt" else "application/x-subrip"
        return PlainTextResponse(render(transcript, response_format), media_type=media)
    return JSONResponse(verbose_json(transcript, task, language, granularities))


def deltas(transcript: Transcript) -> list[str]:
    """The text in word-sized pieces that join back to it exactly."""
    text = transcript.text
    pieces, start = [], 0
    for word in transcript.words:
        at = text.find(word.text, start)
        if at < 0:
            break
        pieces.append(text[start : at + len(word.text)])
        start = at + len(word.text)
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p]


def sse(events: Iterable[dict]) -> str:
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events)


def event_stream(transcript: Transcript) -> StreamingResponse:
    """`transcript.text.delta` events (word-sized pieces of the text), then
    `transcript.text.done`, as OpenAI streams a transcription (the openai client's
    `stream=True`). The pieces are sent once the request's round is decoded."""

    async def body() -> AsyncIterator[str]:
        for piece in deltas(transcript):
            yield sse([{"type": "transcript.text.delta", "delta": piece}])
        yield sse([{"type": "transcript.text.done", "text": transcript.text}])

    headers = {"Cache-Control": "no-cache"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)
