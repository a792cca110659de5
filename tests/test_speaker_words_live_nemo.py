"""Live parity: which speaker a word gets, against NeMo's own `get_word_level_json_list`.

NeMo's ASR + diarization pipeline (`OfflineDiarWithASR`, diarization_utils.py) gives each word
a speaker from the time-ordered diarization labels; its sentences (`get_session_trans_dict`)
change where the speaker does. Both are called here on hand-made words and turns (words in
gaps, before the first and after the last turn, overlapping turns, several turns skipped at
once, words on a turn's end) and `speech_transcript.speakers` must give the same speakers and
the same speaker runs. Runs where NeMo is importable.
"""

from __future__ import annotations

import pytest

from speech_transcript import Segment, SpeakerTurn, Transcript, Word
from speech_transcript.speakers import in_time_order, with_speakers, word_speakers

pytestmark = pytest.mark.reference

diarization_utils = pytest.importorskip("nemo.collections.asr.parts.utils.diarization_utils")

TURNS = [
    SpeakerTurn(0.40, 1.20, "speaker_0"),
    SpeakerTurn(1.20, 2.00, "speaker_1"),
    SpeakerTurn(1.90, 2.60, "speaker_0"),  # overlaps the one before
    SpeakerTurn(3.00, 3.16, "speaker_2"),  # short: skipped by words that jump past it
    SpeakerTurn(3.20, 3.40, "speaker_1"),
    SpeakerTurn(3.50, 5.00, "speaker_3"),
    SpeakerTurn(6.00, 7.00, "speaker_0"),
]
STARTS = [0.0, 0.4, 0.8, 1.2, 1.24, 1.95, 2.0, 2.6, 2.8, 3.3, 3.6, 4.9, 5.0, 5.5, 7.2, 7.6, 9.0]
WORDS = [Word(f"w{i}", s, s + 0.16) for i, s in enumerate(STARTS)]
CASES = {
    "time order": TURNS,
    "speaker by speaker (Sortformer's diarize() order)": sorted(TURNS, key=lambda t: t.speaker),
    "one turn": [SpeakerTurn(1.0, 2.0, "speaker_1")],
    "words first in a later turn": [SpeakerTurn(0.0, 0.2, "speaker_0"),
                                    SpeakerTurn(8.0, 9.5, "speaker_1")],
}  # fmt: skip


def _nemo() -> object:
    """An `OfflineDiarWithASR` with the defaults of NeMo's diarizer config
    (`word_ts_anchor_pos: start`, anchor offset 0.0), without its manifest set-up."""
    pipeline = object.__new__(diarization_utils.OfflineDiarWithASR)
    pipeline.params = {"word_ts_anchor_pos": "start"}
    pipeline.word_ts_anchor_offset = 0.0
    return pipeline


def _labels(turns: list[SpeakerTurn]) -> list[str]:
    """The labels NeMo reads from a time-ordered RTTM (`rttm_to_labels`: "start end speaker")."""
    return [f"{t.start} {t.end} {t.speaker}" for t in in_time_order(turns)]


@pytest.mark.parametrize("name", list(CASES))
def test_word_speakers_equal_nemos(name):
    turns = CASES[name]
    nemo = _nemo().get_word_level_json_list(
        words=[w.text for w in WORDS],
        diar_labels=_labels(turns),
        word_ts=[[w.start, w.end] for w in WORDS],
    )
    assert word_speakers(WORDS, turns) == [item["speaker"] for item in nemo]


@pytest.mark.parametrize("name", list(CASES))
def test_segments_change_where_nemos_sentences_do(name):
    turns = CASES[name]
    labels = _labels(turns)
    nemo_words = _nemo().get_word_level_json_list(
        words=[w.text for w in WORDS], diar_labels=labels, word_ts=[[w.start, w.end] for w in WORDS]
    )
    _, _, _, sentences = diarization_utils.get_session_trans_dict("x", nemo_words, labels)
    one_segment = Segment(" ".join(w.text for w in WORDS), WORDS[0].start, WORDS[-1].end,
                          tuple(WORDS))  # fmt: skip
    transcript = Transcript("", 10.0, "m", words=list(WORDS), segments=[one_segment])
    ours = with_speakers(transcript, turns).segments
    assert [(s.text, s.speaker) for s in ours] == [(s["text"], s["speaker"]) for s in sentences]
