"""Writers and segment limits on hand-made transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speech_transcript import (
    Segment,
    SegmentLimits,
    TimedToken,
    Transcript,
    TranscriptJSON,
    Word,
    render,
    resegment,
)

WORDS = [
    Word("Hello", 0.0, 0.4, 0.9),
    Word("there,", 0.45, 0.8, 0.8),
    Word("world.", 0.9, 1.3, 0.95),
    Word("Next", 3.0, 3.3, 0.7),
    Word("one", 3.35, 3.6, 0.6),
]


def _transcript() -> Transcript:
    segments = [
        Segment("Hello there, world.", 0.0, 1.3, tuple(WORDS[:3])),
        Segment("Next one", 3.0, 3.6, tuple(WORDS[3:])),
    ]
    tokens = [TimedToken(7, "▁Hello", 0.0, 0.4, 0.9), TimedToken(3, "▁there", 0.45, 0.8, 0.8)]
    return Transcript("Hello there, world. Next one", 3725.25, "m", tokens, WORDS, segments)


def test_srt_numbers_and_times():
    srt = render(_transcript(), "srt")
    assert srt.startswith(
        "1\n00:00:00,000 --> 00:00:01,300\nHello there, world.\n\n2\n00:00:03,000 --> 00:00:03,600\n"
    )


def test_vtt_header_and_dot_separator():
    vtt = render(_transcript(), "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.300\n")


def test_hours_in_clock():
    long = Transcript("x", 4000.0, "m", segments=[Segment("x", 3725.25, 3725.5)])
    assert "01:02:05,250 --> 01:02:05,500" in render(long, "srt")


def test_tsv_in_milliseconds():
    assert render(_transcript(), "tsv").splitlines() == [
        "start\tend\ttext",
        "0\t1300\tHello there, world.",
        "3000\t3600\tNext one",
    ]


def test_json_follows_the_schema():
    data = json.loads(render(_transcript(), "json"))
    model = TranscriptJSON.model_validate(data)
    assert model.tokens[0].id == 7
    assert model.words[2].text == "world."
    assert model.duration == 3725.25
    assert set(data) == {
        "text", "duration", "model", "language", "source", "segments", "words", "tokens",
        "speakers",
    }  # fmt: skip


def test_word_highlighting_makes_one_cue_per_word():
    srt = render(_transcript(), "srt", highlight_words=True)
    assert srt.count("-->") == len(WORDS)
    assert "<u>there,</u>" in srt


def test_txt():
    assert render(_transcript(), "txt") == "Hello there, world. Next one\n"


def test_unknown_format():
    with pytest.raises(ValueError, match="docx"):
        render(_transcript(), "docx")


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (SegmentLimits(), ["Hello there, world.", "Next one"]),
        (SegmentLimits(max_words=2), ["Hello there,", "world.", "Next one"]),
        (SegmentLimits(gap=1.0, sentence_end=""), ["Hello there, world.", "Next one"]),
        (SegmentLimits(max_chars=12, sentence_end=""), ["Hello there,", "world. Next", "one"]),
        (SegmentLimits(max_duration=0.5), ["Hello", "there,", "world.", "Next", "one"]),
    ],
)
def test_resegment(limits, expected):
    assert [s.text for s in resegment(WORDS, limits)] == expected


def test_the_readmes_list_every_json_key():
    """The documented schema is the real one: each README that describes the JSON names
    every top-level key of `TranscriptJSON`."""
    root = Path(__file__).resolve().parents[3]
    for readme in (
        root / "packages" / "speech-transcript" / "README.md",
        root / "apps" / "parakeet" / "README.md",
    ):
        text = readme.read_text()
        section = text[text.index("JSON schema") :][:1200]
        for key in TranscriptJSON.model_fields:
            assert f"`{key}`" in section or f"`{key}[" in section, (readme, key)
