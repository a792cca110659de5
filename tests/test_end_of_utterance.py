"""End-of-utterance checkpoints against NeMo: the `<EOU>` / `<EOB>` ids, NeMo's per-frame EOU
predictions, `transcribe`'s text and times, and in streaming an `EndOfUtterance` event at the
frame NeMo's cache-aware stream emits the marker on, through the API (update item and
callback) and the `--streaming` lines.

The fixtures are `tests/reference/make_streaming_checkpoint_fixtures.py`'s
`parakeet_realtime_eou_120m-v1` (NeMo's `EncDecRNNTBPEEOUModel`, sizes shrunk) and
`hybrid_eou_streaming` (NeMo's `EncDecHybridRNNTCTCBPEEOUModel`: that config with the CTC head
of NeMo's example config of the class; both heads emit the markers, and NeMo's CTC EOU
predictions and CTC stream are held too); `tests/test_streaming_cache_aware.py` holds their
encoder steps and ids to NeMo's as well.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
import soundfile

import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio
from nemo_mlx_parakeet.eou import Markers

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "fixtures" / "checkpoints"
FIXTURES = ("parakeet_realtime_eou_120m-v1", "hybrid_eou_streaming")
HYBRID = CHECKPOINTS / "hybrid_eou_streaming"
AUDIO = ROOT / "fixtures" / "audio"
MARKER = re.compile(r"<EO[UB]>")
KINDS = {"<EOU>": "utterance", "<EOB>": "backchannel"}


@dataclass
class Eou:
    """An end-of-utterance fixture: its NeMo references and our model of its `.nemo`."""

    path: Path
    meta: dict[str, Any]
    model: parakeet.Parakeet

    @property
    def npz(self) -> Path:
        return self.path.with_name(self.path.name + ".npz")

    def samples(self, clip: str) -> np.ndarray:
        pieces = self.meta["clips"][clip]["pieces"]
        return np.concatenate([np.array(load_audio(AUDIO / f))[a:b] for f, a, b in pieces])

    def streamed(self):
        """(lookahead key, [left, right], clip, NeMo's streaming output) for every stream."""
        for key, entry in self.meta["contexts"].items():
            for clip, expected in entry["clips"].items():
                yield key, entry["att_context_size"], clip, expected

    def nemo_events(self, ids: list[int], frames: list[int], text: str) -> list[tuple]:
        """The markers of NeMo's hypothesis as (kind, frame, seconds, utterance text): the
        text is NeMo's own hypothesis text cut at its markers."""
        kinds = {label: KINDS[piece] for piece, label in self.meta["markers"].items()}
        utterances = [t.strip() for t in MARKER.split(text)]
        marked = [(kinds[i], f) for i, f in zip(ids, frames, strict=True) if i in kinds]
        assert len(utterances) == len(marked) + 1
        return [(k, f, round(f * 0.08, 6), utterances[n]) for n, (k, f) in enumerate(marked)]


def meta_of(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.name + ".json").read_text())


def as_tuples(events) -> list[tuple]:
    return [(e.kind, e.frame, round(e.time, 6), e.text) for e in events]


@pytest.fixture(scope="module", params=FIXTURES)
def eou(request, tmp_path_factory) -> Eou:
    path = CHECKPOINTS / request.param
    cache = tmp_path_factory.mktemp("cache")
    model = parakeet.load(f"{path}.nemo", cache_dir=cache, dtype="float32", verbose=False)
    return Eou(path, meta_of(path), model)


@pytest.fixture(scope="module")
def hybrid_ctc(tmp_path_factory) -> Eou:
    """The hybrid EOU fixture with its CTC head chosen (`head="ctc"`)."""
    cache = tmp_path_factory.mktemp("cache")
    model = parakeet.load(
        f"{HYBRID}.nemo", cache_dir=cache, dtype="float32", head="ctc", verbose=False
    )
    return Eou(HYBRID, meta_of(HYBRID), model)


def test_fixture_emits_markers_on_some_frames_only(eou):
    """The references are worth something: `<EOU>` and `<EOB>` are emitted, on some frames
    of the long clip and not on others, and `<EOB>` on some clips only."""
    meta = eou.meta
    assert all(meta["marker_stats"]["<EOU>"].values())
    assert not all(meta["marker_stats"]["<EOB>"].values())
    long = meta["contexts"]["70_1"]["clips"]["long"]["eou"]
    assert 0 < len(long["eou_frames"]) < long["frames"] / 10
    assert meta["model_class"].rsplit(".", 1)[-1] in (
        "EncDecRNNTBPEEOUModel", "EncDecHybridRNNTCTCBPEEOUModel",
    )  # fmt: skip


def test_the_hybrid_fixtures_ctc_head_emits_markers_too():
    """NeMo's hybrid EOU class: its CTC head marks some frames of the long clip and not
    others, so that the CTC predictions below are worth comparing."""
    meta = meta_of(HYBRID)
    assert meta["model_class"].endswith("asr_eou_models.EncDecHybridRNNTCTCBPEEOUModel")
    ctc = meta["contexts"]["70_1"]["clips"]["long"]["eou"]["ctc"]
    assert 0 < len(ctc["eou_frames"]) < ctc["frames"] / 2
    assert meta["adapted_from"] == "nvidia/parakeet_realtime_eou_120m-v1"


def test_marker_ids_are_nemos(eou):
    markers = Markers(eou.model.tokenizer)
    assert markers.kinds == {label: KINDS[piece] for piece, label in eou.meta["markers"].items()}
    # as the real checkpoint: the markers are the last pieces, the blank after them
    n = len(eou.model.tokenizer)
    assert sorted(markers.kinds) == [n - 2, n - 1]


def test_offline_eou_predictions_equal_nemo(eou):
    """NeMo's per-frame EOU and EOB predictions of the offline hypothesis (the streaming
    buffer's features through the encoder, greedy decoding), frame for frame."""
    model = eou.model
    markers = Markers(model.tokenizer)
    with np.load(eou.npz) as data:
        for _key, context, clip, expected in eou.streamed():
            nemo = expected["eou"]
            features = mx.array(data[f"{clip}/features"])[None]
            model.encoder.set_default_att_context_size(context)
            encoded, lengths = model.encoder(features)
            (hyp,) = model.transducer.greedy(encoded, lengths)
            assert hyp.ids == nemo["ids"], clip
            frames = [t.frame for t in hyp.tokens]
            assert int(lengths[0]) == nemo["frames"], clip
            for kind, key in (("utterance", "eou_frames"), ("backchannel", "eob_frames")):
                flags = markers.frame_predictions(hyp.ids, frames, nemo["frames"], kind)
                assert [i for i, f in enumerate(flags) if f] == nemo[key], (clip, kind)


def test_ctc_eou_predictions_equal_nemo(hybrid_ctc):
    """The hybrid's CTC head: NeMo's CTC EOU and EOB predictions (the frames whose greedy
    label is the marker, `_get_eou_predictions_from_hypotheses` on the CTC hypothesis with
    its alignment) and its per-frame labels, frame for frame."""
    model = hybrid_ctc.model
    markers = Markers(model.tokenizer)
    with np.load(hybrid_ctc.npz) as data:
        for _key, context, clip, expected in hybrid_ctc.streamed():
            nemo = expected["eou"]["ctc"]
            model.encoder.set_default_att_context_size(context)
            encoded, lengths = model.encoder(mx.array(data[f"{clip}/features"])[None])
            alignment = np.array(mx.argmax(model.ctc(encoded)[0], axis=-1)).tolist()
            assert len(alignment) == int(lengths[0]) == nemo["frames"], clip
            for kind, key in (("utterance", "eou_frames"), ("backchannel", "eob_frames")):
                flags = markers.ctc_frame_predictions(alignment, kind)
                assert [i for i, f in enumerate(flags) if f] == nemo[key], (clip, kind)
            assert alignment == nemo["alignment"], clip


def test_transcribe_equals_nemo_with_markers_in_the_text(eou):
    """`transcribe` equals NeMo's (the released checkpoint's class, `EncDecRNNTBPEModel`;
    `EncDecHybridRNNTCTCBPEModel` for the hybrid): the text keeps `<EOU>` / `<EOB>` as NeMo
    writes it; ids and token and word times too."""
    nemo = eou.meta["plain_class"]["transcribe"]
    assert any("<EOU>" in entry["text"] for entry in nemo.values())
    for clip, expected in nemo.items():
        result = eou.model.transcribe(eou.samples(clip))
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


def events_of_stream(eou: Eou, context, clip: str):
    """Fed in 0.1 s pieces: (final tokens, update items, callback events, the stream)."""
    called, items = [], []
    x = eou.samples(clip)
    with eou.model.transcribe_stream(context=context, on_end_of_utterance=called.append) as s:
        for start in range(0, len(x), 1600):
            items += s.add_audio(x[start : start + 1600]).end_of_utterances
        result = s.finalize()
    items += s.last_update.end_of_utterances
    return result.tokens, items, called, s


def test_stream_reports_each_marker_at_nemos_frame(eou):
    """Fed in 0.1 s pieces, the stream's update items and callback give one event per
    marker of NeMo's cache-aware stream: its kind, frame, time and the utterance's text."""
    for _key, context, clip, expected in eou.streamed():
        rnnt = expected["rnnt"]
        nemo = eou.nemo_events(rnnt["ids"], rnnt["frames"], rnnt["text"])
        tokens, items, called, s = events_of_stream(eou, context, clip)
        assert [t.id for t in tokens] == rnnt["ids"], clip
        assert as_tuples(items) == nemo, clip
        assert as_tuples(called) == nemo, clip
        assert as_tuples(s.end_of_utterances) == nemo, clip


def test_ctc_stream_reports_each_marker_at_nemos_frame(hybrid_ctc):
    """The hybrid streamed with its CTC head: one event per marker of NeMo's CTC stream
    (`conformer_stream_step` with the CTC decoder), at the first frame of the marker's run
    in NeMo's streamed alignment, with the text of NeMo's CTC hypothesis cut at its markers."""
    for _key, context, clip, expected in hybrid_ctc.streamed():
        ctc = expected["ctc"]
        starts = [span[0] for span in ctc["spans"]]
        nemo = hybrid_ctc.nemo_events(ctc["ids"], starts, ctc["text"])
        tokens, items, called, _ = events_of_stream(hybrid_ctc, context, clip)
        assert [t.id for t in tokens] == ctc["ids"], clip
        assert as_tuples(items) == nemo, clip
        assert as_tuples(called) == nemo, clip


def test_an_event_comes_with_the_update_that_makes_its_marker_final(eou):
    """The event is in the same update as the marker's token, not later."""
    _key, context, clip, _expected = max(eou.streamed(), key=lambda s: len(s[3]["rnnt"]["ids"]))
    x = eou.samples(clip)
    with eou.model.transcribe_stream(context=context) as s:
        for start in range(0, len(x), 1600):
            update = s.add_audio(x[start : start + 1600])
            new_markers = [t for t in update.new_tokens if MARKER.fullmatch(t.text or "")]
            assert len(update.end_of_utterances) == len(new_markers)
        s.finalize()


def test_models_without_markers_report_none(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    model = parakeet.load(
        CHECKPOINTS / "stt_en_fastconformer_hybrid_large_streaming_multi.nemo",
        cache_dir=cache, verbose=False,
    )  # fmt: skip
    assert not Markers(model.tokenizer)
    pieces = meta_of(CHECKPOINTS / FIXTURES[0])["clips"]["long"]["pieces"]
    x = np.concatenate([np.array(load_audio(AUDIO / f))[a:b] for f, a, b in pieces])
    with model.transcribe_stream() as s:
        assert s.add_audio(x).end_of_utterances == []
        s.finalize()
    assert s.end_of_utterances == []


def test_streaming_command_prints_a_line_per_marker(eou, tmp_path):
    """`parakeet --streaming` (not a terminal): an `EOU` / `EOB` line per marker, with
    NeMo's time and the utterance's text, after the text lines."""
    markers = eou.meta["markers"].values()
    _key, _context, clip, expected = next(
        s for s in eou.streamed() if any(s[3]["rnnt"]["ids"].count(i) for i in markers)
    )
    wav = tmp_path / f"{clip}.wav"
    soundfile.write(wav, eou.samples(clip), 16000, subtype="FLOAT")
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(wav), "--streaming",
               "--model", f"{eou.path}.nemo", "--dtype", "float32",
               "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    marker_lines = [line[1:] for line in lines if line[1] in ("EOU", "EOB")]
    rnnt = expected["rnnt"]
    nemo = eou.nemo_events(rnnt["ids"], rnnt["frames"], rnnt["text"])
    assert marker_lines == [
        ["EOU" if kind == "utterance" else "EOB", f"{seconds:.2f}", text]
        for kind, _frame, seconds, text in nemo
    ]
    text_lines = [line for line in lines if line[1] not in ("EOU", "EOB")]
    assert text_lines[-1][1] == rnnt["text"]
