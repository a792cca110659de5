"""The NeMo fixture models end to end: converter -> front end -> encoder -> decoders.

Reference values come from tests/reference/make_model_fixtures.py (NeMo itself). Each
stage is checked on NeMo's own input to that stage, so that a mismatch points at one
stage, and the whole chain is checked from the audio files as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_audio_frontend import LogMel, LogMelConfig, load_audio
from mlx_conformer import Conformer
from mlx_ctc_decoder import CTCHead
from mlx_ctc_decoder import greedy_decode as ctc_greedy
from mlx_transducer import Transducer
from nemo_mlx_convert import convert_nemo, open_model_directory

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AUDIO = FIXTURES / "audio"
# make_model_fixtures.py: one structural variant each; make_checkpoint_fixtures.py (and
# make_char_checkpoint_fixtures.py): NVIDIA's released checkpoints, configured as published
# with only sizes shrunk
NAMES = ["tdt", "rnnt", "ctc", "hybrid_tdt_ctc"]
CHECKPOINTS = ["parakeet-tdt-0.6b-v2", "parakeet-tdt-0.6b-v3", "parakeet-rnnt-1.1b",
               "parakeet-ctc-1.1b", "parakeet-tdt_ctc-110m",
               # character-vocabulary classes, the original Conformer (make_char_checkpoint_fixtures.py)
               "stt_zh_conformer_transducer_large", "conformer_ctc_char",
               "conformer_hybrid_transducer_ctc_char"]  # fmt: skip
PATHS = [FIXTURES / "models" / n for n in NAMES] + [
    FIXTURES / "checkpoints" / n for n in CHECKPOINTS
]


def _file(path: Path, suffix: str) -> Path:
    """A fixture's file (names such as parakeet-tdt-0.6b-v2 have dots of their own)."""
    return path.parent / f"{path.name}{suffix}"


class Fixture:
    def __init__(self, path: Path, directory: Path) -> None:
        self.name = path.name
        self.meta = json.loads(_file(path, ".json").read_text())
        with np.load(_file(path, ".npz")) as data:
            self.arrays = {key: data[key] for key in data.files}
        model_dir = open_model_directory(directory)
        cfg = model_dir.nemo_config
        weights = mx.load(str(model_dir.weights))
        self.frontend = LogMel(LogMelConfig.from_nemo(cfg["preprocessor"]))
        self.encoder = Conformer.from_nemo(cfg, weights)
        self.transducer = Transducer.from_nemo(cfg, weights) if "joint" in cfg else None
        self.ctc = CTCHead.from_nemo(cfg, weights, model_dir.model_class)
        self.weights, self.config, self.model_class = weights, cfg, model_dir.model_class
        self.clips = list(self.meta["clips"])

    def stem(self, clip: str) -> str:
        return Path(clip).stem


@pytest.fixture(scope="module", params=PATHS, ids=lambda path: path.name)
def fixture(request, tmp_path_factory) -> Fixture:
    out = tmp_path_factory.mktemp("converted") / request.param.name
    convert_nemo(_file(request.param, ".nemo"), out)
    return Fixture(request.param, out)


def test_converted_tensor_names_are_the_modules_parameters(fixture):
    """The converter's tensor names are the modules' parameter names under their prefixes:
    each module loads strictly, and no converted tensor is left to no module."""
    names = {Conformer.PREFIX + k for k, _ in tree_flatten(fixture.encoder.parameters())}
    if fixture.transducer is not None:
        names |= {k for k, _ in tree_flatten(fixture.transducer.parameters())}
    if fixture.ctc is not None:
        _, prefix = CTCHead.section(fixture.config, fixture.model_class)
        names |= {prefix + k for k, _ in tree_flatten(fixture.ctc.parameters())}
    assert set(fixture.weights) == names


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def test_features_from_audio_files(fixture):
    for clip in fixture.clips:
        features, length = fixture.frontend(load_audio(AUDIO / clip))
        expected = fixture.arrays[f"{fixture.stem(clip)}/features"]
        assert int(length[0]) == fixture.meta["clips"][clip]["feature_length"]
        np.testing.assert_allclose(np.array(features[0]), expected, rtol=0, atol=1e-4)


def test_encoder_on_nemo_features(fixture):
    for clip in fixture.clips:
        features = mx.array(fixture.arrays[f"{fixture.stem(clip)}/features"])[None]
        valid = mx.array(
            [fixture.meta["clips"][clip]["feature_length"]]
        )  # the last STFT frame is padding
        encoded, length = fixture.encoder(features, valid)
        expected = fixture.arrays[f"{fixture.stem(clip)}/encoder"]
        assert int(length[0]) == fixture.meta["clips"][clip]["encoded_length"]
        assert _rel(np.array(encoded[0]), expected) <= 1e-4, clip


def test_encoder_batched_equals_nemo(fixture):
    feats = [fixture.arrays[f"{fixture.stem(c)}/features"] for c in fixture.clips]
    batch = np.zeros((len(feats), max(len(f) for f in feats), feats[0].shape[1]), dtype=np.float32)
    for row, f in zip(batch, feats, strict=True):
        row[: len(f)] = f
    lengths = [fixture.meta["clips"][c]["feature_length"] for c in fixture.clips]
    encoded, out_len = fixture.encoder(mx.array(batch), mx.array(lengths))
    for i, clip in enumerate(fixture.clips):
        expected = fixture.arrays[f"{fixture.stem(clip)}/encoder"]
        assert int(out_len[i]) == len(expected)
        assert _rel(np.array(encoded[i, : len(expected)]), expected) <= 1e-4, clip


@pytest.mark.parametrize("window", [None, 1, 3, 8])
def test_transducer_greedy_on_nemo_encoder_output(fixture, window):
    """NeMo's decisions whatever the number of frames a decoding step evaluates."""
    if fixture.transducer is None:
        pytest.skip(f"{fixture.name} has no transducer head")
    decode = fixture.transducer.greedy_decoder(window)
    for clip in fixture.clips:
        encoded = mx.array(fixture.arrays[f"{fixture.stem(clip)}/encoder"])[None]
        (hyp,) = decode(encoded)
        expected = fixture.meta["clips"][clip]["transducer"]
        assert hyp.ids == expected["ids"], clip
        assert hyp.frames == expected["frames"], clip
        if fixture.transducer.config.is_tdt:
            assert hyp.durations == expected["durations"], clip


def test_transducer_beam_nbest_on_nemo_encoder_output(fixture):
    if fixture.transducer is None:
        pytest.skip(f"{fixture.name} has no transducer head")
    for clip, expected in fixture.meta["beam"].items():
        encoded = mx.array(fixture.arrays[f"{fixture.stem(clip)}/encoder"])[None]
        (nbest,) = fixture.transducer.beam(encoded, beam_size=4)
        assert [h.ids for h in nbest] == [e["ids"] for e in expected], clip
        np.testing.assert_allclose(
            [h.score for h in nbest], [e["score"] for e in expected], rtol=1e-5
        )


def test_transducer_beam_length_penalty_ranks_nemo_nbest(fixture):
    """Penalty 0 ranks by NeMo's raw score (its score_norm=False); 2 by score / length**2.
    The hypotheses and their scores are NeMo's; only the order is derived from them."""
    if fixture.transducer is None:
        pytest.skip(f"{fixture.name} has no transducer head")
    for clip, expected in fixture.meta["beam"].items():
        encoded = mx.array(fixture.arrays[f"{fixture.stem(clip)}/encoder"])[None]
        for penalty in (0.0, 2.0):
            (nbest,) = fixture.transducer.beam(encoded, beam_size=4, length_penalty=penalty)
            # NeMo's length counts its start symbol: one more than the emitted ids
            ranked = sorted(
                expected, key=lambda e: e["score"] / (len(e["ids"]) + 1) ** penalty, reverse=True
            )
            assert [h.ids for h in nbest] == [e["ids"] for e in ranked], (clip, penalty)


def test_ctc_alignment_on_nemo_encoder_output(fixture):
    if fixture.ctc is None:
        pytest.skip(f"{fixture.name} has no CTC head")
    for clip in fixture.clips:
        encoded = mx.array(fixture.arrays[f"{fixture.stem(clip)}/encoder"])[None]
        log_probs = fixture.ctc(encoded)
        np.testing.assert_allclose(
            np.array(log_probs[0]), fixture.arrays[f"{fixture.stem(clip)}/ctc_log_probs"], atol=1e-4
        )
        (hyp,) = ctc_greedy(log_probs, blank_id=fixture.ctc.config.blank_id)
        assert hyp.alignment == fixture.meta["clips"][clip]["ctc"]["alignment"], clip


def test_whole_chain_from_audio_batch_of_all_clips(fixture):
    """Files -> one padded batch -> NeMo's ids on each clip alone.

    (NeMo's `transcribe` also pads clips shorter than 1 s to 1 s; that is the app's
    business and is checked there, so the reference here is NeMo's model forward.)
    """
    signals = [np.array(load_audio(AUDIO / c)) for c in fixture.clips]
    batch = np.zeros((len(signals), max(map(len, signals))), dtype=np.float32)
    for row, s in zip(batch, signals, strict=True):
        row[: len(s)] = s
    features, lengths = fixture.frontend(batch, [len(s) for s in signals])
    encoded, enc_len = fixture.encoder(features, lengths)
    if fixture.transducer is not None:
        hyps = fixture.transducer.greedy(encoded, enc_len)
        assert [h.ids for h in hyps] == [
            fixture.meta["clips"][c]["transducer"]["ids"] for c in fixture.clips
        ]
    else:
        hyps = ctc_greedy(fixture.ctc(encoded), enc_len, blank_id=fixture.ctc.config.blank_id)
        for hyp, clip in zip(hyps, fixture.clips, strict=True):
            assert hyp.alignment == fixture.meta["clips"][clip]["ctc"]["alignment"], clip
