"""`canary --boost-phrase / --lm` and `transcribe(..., biasing=, boost=)`: the app's beam
search with NeMo's AED fusion, from audio, against NeMo's multitask beam decoding with a
boosting tree and an n-gram LM on the canary-180m-flash checkpoint fixture.

NeMo's n-best lists come from tests/reference/make_canary_fusion_fixtures.py (NeMo 3.0.0's
`beam` strategy, beam 4, `beam.boosting_tree` with the fixture's phrases through the
tokenizer in English and `AEDBeamInferConfig`'s depth scaling 1, `beam.ngram_lm_model`;
each clip alone, the ASR prompt `en_asr_pnc`); tests/test_canary_fusion.py holds the decoder
to them on NeMo's encoder output. Here the whole app runs from the audio files: its best
ids must be NeMo's best, and on the clips where NeMo's fusion changed the best ids, ours
change against the app's own plain beam search (random weights: the text is gibberish).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nemo_mlx_canary as canary
from nemo_mlx_canary.errors import CanaryError
from nemo_mlx_convert import convert_nemo
from speech_transcript.biasing import Biasing

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FUSION = json.loads((FIXTURES / "beam_fusion" / "canary_fusion.json").read_text())
CHECKPOINT = FIXTURES / FUSION["checkpoint"]
PROMPT = "en_asr_pnc"
PHRASES = FUSION["boosting_tree"]["key_phrases_list"]
SETTINGS = {"boost": {"boost": 1.0}, "lm": {"lm": 0.3}}


def biasing(setting: dict) -> Biasing:
    lm = {"lm": FIXTURES / FUSION["lm"], "lm_alpha": setting["lm"]} if "lm" in setting else {}
    phrases = (
        {"phrases": tuple(PHRASES), "boost_alpha": setting["boost"]} if "boost" in setting else {}
    )
    return Biasing(**phrases, **lm)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("canary") / "model"
    convert_nemo(CHECKPOINT.with_suffix(".nemo"), out)
    return out


@pytest.fixture(scope="module")
def model(model_dir):
    return canary.load(str(model_dir), dtype="float32", verbose=False)


def transcribe(model, clip: str, **options):
    return model.transcribe(str(FIXTURES / "audio" / clip), source_lang="en", pnc=True,
                            decoding="beam", beam_size=FUSION["beam_size"], **options)  # fmt: skip


def best_ids(setting: str, clip: str, tokenizer) -> list[int]:
    ids = FUSION["results"][setting]["nbest"][PROMPT][clip][0]["ids"]
    while ids and ids[-1] in (tokenizer.eos_id, tokenizer.pad_id):  # NeMo's hypothesis ids
        ids = ids[:-1]
    return ids


def test_fixture_settings_are_the_apps():
    for name, setting in SETTINGS.items():
        assert FUSION["results"][name]["fusion"] == setting
        assert any(c.startswith(f"{PROMPT}/") for c in FUSION["results"][name]["changed"])


@pytest.mark.parametrize("name", list(SETTINGS))
def test_fused_beam_from_audio_equals_nemo(model, name):
    changed = 0
    for clip in FUSION["clips"]:
        plain = transcribe(model, clip)
        fused = transcribe(model, clip, biasing=biasing(SETTINGS[name]))
        assert [t.id for t in plain.tokens] == best_ids("plain", clip, model.tokenizer), clip
        assert [t.id for t in fused.tokens] == best_ids(name, clip, model.tokenizer), clip
        if f"{PROMPT}/{clip}" in FUSION["results"][name]["changed"]:
            assert fused.tokens != plain.tokens, clip  # NeMo's `changed`: the best ids
            changed += 1
    assert changed


def test_boost_short_form_and_errors(model):
    clip = FUSION["clips"][0]
    short = transcribe(model, clip, boost=PHRASES)  # the default weights: score 1, alpha 1
    assert [t.id for t in short.tokens] == best_ids("boost", clip, model.tokenizer)
    with pytest.raises(CanaryError, match="beam decoding"):
        model.transcribe(str(FIXTURES / "audio" / clip), decoding="greedy", boost=PHRASES)
    with pytest.raises(CanaryError, match="not both"):
        transcribe(model, clip, boost=PHRASES, biasing=biasing(SETTINGS["lm"]))
    with pytest.raises(CanaryError, match="CTC head"):
        transcribe(model, clip, biasing=Biasing(("a",), word_spotter=True))


def test_cli_takes_the_options(model_dir, model):
    clip = FUSION["clips"][0]
    command = [sys.executable, "-m", "nemo_mlx_canary.cli", "--model", str(model_dir),
               "--decoding", "beam", "--beam-size", str(FUSION["beam_size"]),
               "--output-format", "json", "--quiet", "--dtype", "float32",
               *(a for p in PHRASES for a in ("--boost-phrase", p)),
               str(FIXTURES / "audio" / clip)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    assert [t["id"] for t in ours["tokens"]] == best_ids("boost", clip, model.tokenizer)
    command[command.index("beam")] = "greedy"
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("canary: error: phrase boosting and LM fusion need beam")
