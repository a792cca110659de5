"""Transducer beam search with shallow fusion, against NeMo's `malsd_batch` on NeMo-built models.

`tests/reference/make_beam_fusion_fixtures.py` ran NeMo 3.0.0's batched beam search
(`malsd_batch`, beam 4, n-best) of the `tdt` and `rnnt` fixture models without fusion, with
an n-gram LM (lm3.arpa), a boosting tree (the fusion fixture's key phrases) and both, with
NeMo's default `pruning_mode` / `blank_lm_score_mode` and with the other three pairs, on
NeMo's own encoder output of each clip, alone and as one padded batch; the fixture shows
fusion changing NeMo's best ids on most clips. Ours (mlx-asr-fusion's models given to
`Transducer.beam(..., strategy="malsd_batch", fusion=...)`) must give the same n-best lists:
ids, frames and TDT durations identical, scores to float32 rounding.
"""

from __future__ import annotations

import json

import mlx.core as mx
import pytest
from test_fusion_decoding import FIXTURES, fusion_models, load_transducer, padded_batch

from mlx_transducer import Transducer

BEAM = json.loads((FIXTURES / "beam_fusion" / "beam_fusion.json").read_text())
SETTINGS = list(BEAM["results"]["tdt"]["settings"])
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=list(BEAM["results"]))
def model(request, tmp_path_factory):
    name = request.param
    clips = BEAM["results"][name]["clips"]
    return name, *load_transducer(name, clips, tmp_path_factory.mktemp("converted"))


def decode(transducer: Transducer, frames: mx.array, lengths: mx.array | None, setting: dict):
    options = {k: setting[k] for k in ("pruning_mode", "blank_lm_score_mode") if k in setting}
    fusion = fusion_models(setting, transducer.config.blank_id)
    return transducer.beam(frames, lengths, beam_size=BEAM["beam_size"], strategy="malsd_batch",
                           fusion=fusion, **options)  # fmt: skip


def assert_nbest(ours, nemo, tdt: bool, where) -> None:
    assert [h.ids for h in ours] == [h["ids"] for h in nemo], where
    for hyp, want in zip(ours, nemo, strict=True):
        assert [t.frame for t in hyp.tokens] == want["frames"], where
        if tdt:
            assert [t.duration for t in hyp.tokens] == want["durations"], where
        assert abs(hyp.score - want["score"]) <= SCORE_TOLERANCE * max(1.0, abs(want["score"])), (
            where
        )


def test_fixture_shows_fusion_changing_nemos_beam():
    for name, results in BEAM["results"].items():
        for setting_name, setting in results["settings"].items():
            if setting_name != "plain":
                assert len(setting["changed"]) >= 2, (name, setting_name)


@pytest.mark.parametrize("setting_name", SETTINGS)
def test_malsd_beam_equals_nemos_clip_by_clip(model, setting_name):
    name, transducer, encoded = model
    expected = BEAM["results"][name]["settings"][setting_name]
    for clip, frames in encoded.items():
        (nbest,) = decode(transducer, frames[None], None, expected["fusion"])
        assert_nbest(nbest, expected["clips"][clip], transducer.config.is_tdt, (setting_name, clip))


@pytest.mark.parametrize("setting_name", SETTINGS)
def test_malsd_beam_batched_equals_nemos(model, setting_name):
    name, transducer, encoded = model
    expected = BEAM["results"][name]["settings"][setting_name]
    results = decode(transducer, *padded_batch(encoded), expected["fusion"])
    for clip, nbest in zip(encoded, results, strict=True):
        assert_nbest(
            nbest, expected["batched"][clip], transducer.config.is_tdt, (setting_name, clip)
        )


def test_default_beam_refuses_fusion(model):
    _, transducer, encoded = model
    frames = next(iter(encoded.values()))[None]
    fusion = fusion_models({"lm": 0.5}, transducer.config.blank_id)
    with pytest.raises(ValueError, match="malsd_batch"):
        transducer.beam(frames, fusion=fusion)
    with pytest.raises(ValueError, match="pruning_mode"):
        transducer.beam(frames, strategy="malsd_batch", pruning_mode="sometimes")
