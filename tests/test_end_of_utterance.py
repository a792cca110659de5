"""End-of-utterance checkpoints (parakeet_realtime_eou_120m-v1) against NeMo: the `<EOU>` /
`<EOB>` ids, NeMo's per-frame EOU predictions, `transcribe`'s text and times, and in
streaming an `EndOfUtterance` event at the frame NeMo's cache-aware stream emits the marker
on, through the API (update item and callback) and the `--streaming` lines.

The fixture is `tests/reference/make_streaming_checkpoint_fixtures.py`'s
`parakeet_realtime_eou_120m-v1` (NeMo's `EncDecRNNTBPEEOUModel`, sizes shrunk);
`tests/test_streaming_cache_aware.py` holds its encoder steps and ids to NeMo's too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import soundfile

import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio
from nemo_mlx_parakeet.eou import Markers

ROOT = Path(__file__).resolve().parent
FIXTURE = ROOT / "fixtures" / "checkpoints" / "parakeet_realtime_eou_120m-v1"
AUDIO = ROOT / "fixtures" / "audio"
META = json.loads(FIXTURE.with_name(FIXTURE.name + ".json").read_text())
NPZ = FIXTURE.with_name(FIXTURE.name + ".npz")
MARKER = re.compile(r"<EO[UB]>")
KINDS = {"<EOU>": "utterance", "<EOB>": "backchannel"}


def samples(clip: str) -> np.ndarray:
    pieces = META["clips"][clip]["pieces"]
    return np.concatenate([np.array(load_audio(AUDIO / f))[a:b] for f, a, b in pieces])


def streamed():
    """(lookahead key, [left, right], clip, NeMo's streaming output) for every stream."""
    for key, entry in META["contexts"].items():
        for clip, expected in entry["clips"].items():
            yield key, entry["att_context_size"], clip, expected


def nemo_events(ids: list[int], frames: list[int], text: str) -> list[tuple]:
    """The markers of NeMo's hypothesis as (kind, frame, seconds, utterance text): the text
    is NeMo's own hypothesis text cut at its markers."""
    kinds = {label: KINDS[piece] for piece, label in META["markers"].items()}
    utterances = [t.strip() for t in MARKER.split(text)]
    marked = [(kinds[i], f) for i, f in zip(ids, frames, strict=True) if i in kinds]
    assert len(utterances) == len(marked) + 1
    return [(k, f, round(f * 0.08, 6), utterances[n]) for n, (k, f) in enumerate(marked)]


def as_tuples(events) -> list[tuple]:
    return [(e.kind, e.frame, round(e.time, 6), e.text) for e in events]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> parakeet.Parakeet:
    cache = tmp_path_factory.mktemp("cache")
    return parakeet.load(f"{FIXTURE}.nemo", cache_dir=cache, dtype="float32", verbose=False)


def test_fixture_emits_markers_on_some_frames_only():
    """The references are worth something: `<EOU>` and `<EOB>` are emitted, on some frames
    of the long clip and not on others, and `<EOB>` on some clips only."""
    assert all(META["marker_stats"]["<EOU>"].values())
    assert not all(META["marker_stats"]["<EOB>"].values())
    long = META["contexts"]["70_1"]["clips"]["long"]["eou"]
    assert 0 < len(long["eou_frames"]) < long["frames"] / 10
    assert META["model_class"].endswith("asr_eou_models.EncDecRNNTBPEEOUModel")


def test_marker_ids_are_nemos(model):
    markers = Markers(model.tokenizer)
    assert markers.kinds == {label: KINDS[piece] for piece, label in META["markers"].items()}
    # as the real checkpoint: the markers are the last pieces, the blank after them
    assert sorted(markers.kinds) == [len(model.tokenizer) - 2, len(model.tokenizer) - 1]


def test_offline_eou_predictions_equal_nemo(model):
    """NeMo's per-frame EOU and EOB predictions of the offline hypothesis (the streaming
    buffer's features through the encoder, greedy decoding), frame for frame."""
    markers = Markers(model.tokenizer)
    with np.load(NPZ) as data:
        for _key, context, clip, expected in streamed():
            eou = expected["eou"]
            features = mx.array(data[f"{clip}/features"])[None]
            model.encoder.set_default_att_context_size(context)
            encoded, lengths = model.encoder(features)
            (hyp,) = model.transducer.greedy(encoded, lengths)
            assert hyp.ids == eou["ids"], clip
            frames = [t.frame for t in hyp.tokens]
            assert int(lengths[0]) == eou["frames"], clip
            for kind, key in (("utterance", "eou_frames"), ("backchannel", "eob_frames")):
                flags = markers.frame_predictions(hyp.ids, frames, eou["frames"], kind)
                assert [i for i, f in enumerate(flags) if f] == eou[key], (clip, kind)


def test_transcribe_equals_nemo_with_markers_in_the_text(model):
    """`transcribe` equals NeMo's (the released checkpoint's class, `EncDecRNNTBPEModel`):
    the text keeps `<EOU>` / `<EOB>` as NeMo writes it; ids and token and word times too."""
    nemo = META["plain_class"]["transcribe"]
    assert any("<EOU>" in entry["text"] for entry in nemo.values())
    for clip, expected in nemo.items():
        result = model.transcribe(samples(clip))
        assert result.text == expected["text"], clip
        assert [t.id for t in result.tokens] == expected["ids"], clip
        words = expected["timestamp"]["word"]
        assert [w.text for w in result.words] == [w["word"] for w in words], clip
        for ours, theirs in ((result.tokens, expected["timestamp"]["char"]),
                             (result.words, words)):  # fmt: skip
            # to the microsecond (frames are 80 ms apart): within the input, as ours are
            assert [(round(o.start, 6), round(o.end, 6)) for o in ours] == [
                (
                    round(min(t["start"], result.duration), 6),
                    round(min(t["end"], result.duration), 6),
                )
                for t in theirs
            ], clip


def test_stream_reports_each_marker_at_nemos_frame(model):
    """Fed in 0.1 s pieces, the stream's update items and callback give one event per
    marker of NeMo's cache-aware stream: its kind, frame, time and the utterance's text."""
    for _key, context, clip, expected in streamed():
        nemo = nemo_events(expected["rnnt"]["ids"], expected["rnnt"]["frames"],
                           expected["rnnt"]["text"])  # fmt: skip
        called, items = [], []
        x = samples(clip)
        with model.transcribe_stream(context=context, on_end_of_utterance=called.append) as s:
            for start in range(0, len(x), 1600):
                items += s.add_audio(x[start : start + 1600]).end_of_utterances
            result = s.finalize()
        items += s.last_update.end_of_utterances
        assert [t.id for t in result.tokens] == expected["rnnt"]["ids"], clip
        assert as_tuples(items) == nemo, clip
        assert as_tuples(called) == nemo, clip
        assert as_tuples(s.end_of_utterances) == nemo, clip


def test_an_event_comes_with_the_update_that_makes_its_marker_final(model):
    """The event is in the same update as the marker's token, not later."""
    _key, context, clip, _expected = max(streamed(), key=lambda s: len(s[3]["rnnt"]["ids"]))
    x = samples(clip)
    with model.transcribe_stream(context=context) as s:
        for start in range(0, len(x), 1600):
            update = s.add_audio(x[start : start + 1600])
            new_markers = [t for t in update.new_tokens if MARKER.fullmatch(t.text or "")]
            assert len(update.end_of_utterances) == len(new_markers)
        s.finalize()


def test_models_without_markers_report_none(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    other = (
        ROOT / "fixtures" / "checkpoints" / "stt_en_fastconformer_hybrid_large_streaming_multi.nemo"
    )
    model = parakeet.load(other, cache_dir=cache, verbose=False)
    assert not Markers(model.tokenizer)
    with model.transcribe_stream() as s:
        assert s.add_audio(samples("long")).end_of_utterances == []
        s.finalize()
    assert s.end_of_utterances == []


def test_streaming_command_prints_a_line_per_marker(model, tmp_path):
    """`parakeet --streaming` (not a terminal): an `EOU` / `EOB` line per marker, with
    NeMo's time and the utterance's text, after the text lines."""
    _key, _context, clip, expected = next(
        s for s in streamed() if any(s[3]["rnnt"]["ids"].count(i) for i in META["markers"].values())
    )
    wav = tmp_path / f"{clip}.wav"
    soundfile.write(wav, samples(clip), 16000, subtype="FLOAT")
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(wav), "--streaming",
               "--model", f"{FIXTURE}.nemo", "--dtype", "float32",
               "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    marker_lines = [line[1:] for line in lines if line[1] in ("EOU", "EOB")]
    nemo = nemo_events(
        expected["rnnt"]["ids"], expected["rnnt"]["frames"], expected["rnnt"]["text"]
    )
    assert marker_lines == [
        ["EOU" if kind == "utterance" else "EOB", f"{seconds:.2f}", text]
        for kind, _frame, seconds, text in nemo
    ]
    text_lines = [line for line in lines if line[1] not in ("EOU", "EOB")]
    assert text_lines[-1][1] == expected["rnnt"]["text"]
