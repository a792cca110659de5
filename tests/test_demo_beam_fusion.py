"""Beam search with phrase boosting and LM fusion on the bundled demo model: NeMo's fused
CTC beam (`beam_batch` with fusion models) in mlx-ctc-decoder, n-best for n-best on NeMo's
own log-probs, and `parakeet --decoding beam` with --boost-phrase / --lm equal to NeMo's
`transcribe` (TDT head: `malsd_batch`, NeMo's only fused transducer beam; CTC head:
`beam_batch`) on every held-out clip.

NeMo's results come from tests/reference/make_demo_beam_fusion_fixture.py (NeMo 3.0.0 on the
same `.nemo`, clips, phrases and LM as tests/test_demo_biasing.py); the boost and the LM
change the text of several clips there (asserted), so equal outputs show the fusion works.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from demo_cli import check_cli_clips

import nemo_mlx_parakeet as parakeet
from mlx_asr_fusion import BoostingTree, BoostingTreeConfig, FusionModel, NGramLM
from mlx_ctc_decoder import beam_search
from nemo_mlx_parakeet import demo

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo"
BEAM = json.loads((FIXTURE / "beam_fusion.json").read_text())
FILES = list(BEAM["heads"]["ctc"]["plain"]["clips"])
SETTINGS = ["plain", "boost", "lm"]
VOCAB = 128  # the demo tokenizer's; the blank is 128


def options(name: str) -> list[str]:
    if name == "boost":
        phrases = [arg for p in BEAM["phrases"] for arg in ("--boost-phrase", p)]
        return [*phrases, "--boost-alpha", str(BEAM["boosting_tree_alpha"])]
    if name == "lm":
        return ["--lm", str(FIXTURE / BEAM["lm"]["file"]), "--lm-alpha", str(BEAM["lm"]["alpha"])]
    return []


def test_fixture_is_for_the_bundled_model_and_shows_changes():
    assert hashlib.sha256(demo.MODEL.read_bytes()).hexdigest() == BEAM["model_sha256"]
    for head in ("rnnt", "ctc"):
        for name in ("boost", "lm"):
            assert BEAM["heads"][head][name]["changed"], (head, name)


@pytest.fixture(scope="module")
def fusion():
    encode = parakeet.load("demo").tokenizer.encode  # NeMo's text_to_ids, the same model
    lm = NGramLM.from_arpa(FIXTURE / BEAM["lm"]["file"], VOCAB)
    tree = BoostingTree.from_config(
        BoostingTreeConfig(key_phrases_list=BEAM["phrases"]), encode, VOCAB
    )
    return {
        "plain": [],
        "boost": [FusionModel(tree, BEAM["boosting_tree_alpha"])],
        "lm": [FusionModel(lm, BEAM["lm"]["alpha"])],
    }


@pytest.mark.parametrize("name", SETTINGS)
def test_ctc_beam_nbest_equals_nemo(fusion, name):
    with np.load(FIXTURE / "word_spotter_logprobs.npz") as data:
        log_probs = {stem: data[stem] for stem in data.files}
    expected = BEAM["heads"]["ctc"][name]["nbest"]
    for stem, nbest in expected.items():
        ours = beam_search(log_probs[stem], blank_id=VOCAB, beam_size=BEAM["beam_size"],
                           fusion=fusion[name], **BEAM["ctc_beam"])  # fmt: skip
        assert [h.ids for h in ours] == [h["ids"] for h in nbest], (name, stem)
        np.testing.assert_allclose([h.score for h in ours], [h["score"] for h in nbest],
                                   rtol=1e-6, err_msg=f"{name} {stem}")  # fmt: skip


@pytest.mark.parametrize("head", ["rnnt", "ctc"])
@pytest.mark.parametrize("name", SETTINGS)
def test_cli_beam_equals_nemo(tmp_path, head, name):
    beam = ["--decoding", "beam", "--beam-size", str(BEAM["beam_size"])]
    check_cli_clips(tmp_path, head, [*beam, *options(name)], FIXTURE, FILES,
                    BEAM["heads"][head][name]["clips"], (head, name))  # fmt: skip
