"""Speakers on words and segments (`speech_transcript.speakers`): NeMo's cursor walk (held
to NeMo itself by tests/test_speaker_words_live_nemo.py) and what we add around it."""

import argparse
import dataclasses
import json

import pytest

from speech_transcript import (
    Segment,
    SegmentLimits,
    SpeakerTurn,
    Transcript,
    Word,
    formats_for,
    render,
    resegment,
)
from speech_transcript.cli import Output, UsageError
from speech_transcript.speakers import with_speakers, with_word_speakers, word_speakers

A = SpeakerTurn(0.0, 1.0, "speaker_0")
B = SpeakerTurn(1.0, 2.0, "speaker_1")


def _transcript() -> Transcript:
    words = [Word("hi", 0.1, 0.3), Word("there.", 0.5, 0.9), Word("yes", 1.2, 1.4),
             Word("no", 1.6, 1.8)]  # fmt: skip
    segments = [Segment("hi there.", 0.1, 0.9, tuple(words[:2])),
                Segment("yes no", 1.2, 1.8, tuple(words[2:]))]  # fmt: skip
    return Transcript("hi there. yes no", 2.0, "m", words=words, segments=segments)


def test_a_word_takes_the_turn_its_start_is_in():
    words = [Word("a", 0.2, 1.5), Word("b", 1.0, 1.1), Word("c", 1.01, 1.1)]
    # "a" runs into B but starts in A; "b" starts on A's end (not past it): still A.
    assert word_speakers(words, [B, A]) == ["speaker_0", "speaker_0", "speaker_1"]


def test_the_cursor_moves_one_turn_per_word_as_nemos_does():
    turns = [A, SpeakerTurn(1.1, 1.2, "speaker_2"), SpeakerTurn(1.3, 1.4, "speaker_3")]
    words = [Word("x", 5.0, 5.1), Word("y", 5.2, 5.3), Word("z", 5.4, 5.5)]
    assert word_speakers(words, turns) == ["speaker_2", "speaker_3", "speaker_3"]


def test_per_word_speakers_split_segments_and_make_turns():
    """A live stream's labels come per word: segments split where they change, the turns are
    the runs of words with one speaker."""
    labels = ["speaker_1", "speaker_0", "speaker_0", "speaker_1"]
    t = with_word_speakers(_transcript(), labels)
    assert [w.speaker for w in t.words] == labels
    assert [(s.text, s.speaker) for s in t.segments] == [
        ("hi", "speaker_1"), ("there.", "speaker_0"), ("yes", "speaker_0"), ("no", "speaker_1")
    ]  # fmt: skip
    assert t.speakers == [SpeakerTurn(0.1, 0.3, "speaker_1"), SpeakerTurn(0.5, 1.4, "speaker_0"),
                          SpeakerTurn(1.6, 1.8, "speaker_1")]  # fmt: skip
    with pytest.raises(ValueError, match="3 speakers for 4 words"):
        with_word_speakers(_transcript(), labels[:3])


def test_no_turns_no_speakers():
    assert word_speakers([Word("x", 0.0, 0.1)], []) == [None]
    assert with_speakers(_transcript(), []).segments[0].speaker is None


def test_segments_split_where_the_speaker_changes():
    t = with_speakers(_transcript(), [A, SpeakerTurn(1.0, 1.5, "speaker_1"),
                                      SpeakerTurn(1.5, 2.0, "speaker_0")])  # fmt: skip
    assert [(s.text, s.start, s.end, s.speaker) for s in t.segments] == [
        ("hi there.", 0.1, 0.9, "speaker_0"),
        ("yes", 1.2, 1.4, "speaker_1"),
        ("no", 1.6, 1.8, "speaker_0"),
    ]
    assert [w.speaker for w in t.words] == ["speaker_0", "speaker_0", "speaker_1", "speaker_0"]
    assert t.speakers[0] == A


def test_rttm_line():
    assert B.rttm("x") == "SPEAKER x 1 1.000 1.000 <NA> <NA> speaker_1 <NA> <NA>"


def _diarized() -> Transcript:
    turns = [A, SpeakerTurn(1.0, 2.0, "speaker_1")]
    return dataclasses.replace(with_speakers(_transcript(), turns), source="dir/talk.wav")


def test_writers_show_the_speakers():
    t = _diarized()
    assert render(t, "txt") == "[speaker_0] hi there.\n[speaker_1] yes no\n"
    assert render(t, "txt", timestamps=True).splitlines()[1] == "[1.20 - 1.80] [speaker_1] yes no"
    assert "\n[speaker_0] hi there.\n" in render(t, "srt")
    assert render(t, "vtt").count("[speaker_") == 2
    assert render(t, "tsv").splitlines() == [
        "start\tend\tspeaker\ttext",
        "100\t900\tspeaker_0\thi there.",
        "1200\t1800\tspeaker_1\tyes no",
    ]
    data = json.loads(render(t, "json"))
    assert [w["speaker"] for w in data["words"]] == ["speaker_0"] * 2 + ["speaker_1"] * 2
    assert data["segments"][1]["speaker"] == "speaker_1"
    assert data["speakers"][0] == {"start": 0.0, "end": 1.0, "speaker": "speaker_0"}
    assert render(t, "rttm") == (
        "SPEAKER talk 1 0.000 1.000 <NA> <NA> speaker_0 <NA> <NA>\n"
        "SPEAKER talk 1 1.000 1.000 <NA> <NA> speaker_1 <NA> <NA>\n"
    )


def test_without_speakers_the_outputs_are_as_before():
    t = _transcript()
    assert render(t, "tsv").splitlines()[0] == "start\tend\ttext"
    assert "[speaker" not in render(t, "srt") + render(t, "txt", timestamps=True)
    assert render(t, "rttm") == ""


def test_subtitle_cues_are_cut_where_the_speaker_changes():
    words = _diarized().words
    cues = resegment(words, SegmentLimits(sentence_end=""))
    assert [(c.text, c.speaker) for c in cues] == [("hi there.", "speaker_0"),
                                                   ("yes no", "speaker_1")]  # fmt: skip


def test_rttm_needs_diarize_and_all_includes_it_only_then():
    assert "rttm" not in formats_for("all")
    assert "rttm" in formats_for("all", speakers=True)
    args = argparse.Namespace(output_format="rttm", output_dir=None,
                              output_template="{stem}.{ext}", diarize=None)  # fmt: skip
    with pytest.raises(UsageError, match="needs --diarize"):
        Output.from_args(args, ["a.wav"])
    args.diarize = True
    assert Output.from_args(args, ["a.wav"]).formats == ("rttm",)


def test_several_rttm_documents_on_stdout_are_plain_rttm(capsys):
    output = Output(("rttm",), several=True)
    output.write(_diarized(), 0)
    assert capsys.readouterr().out.startswith("SPEAKER talk 1 0.000")
