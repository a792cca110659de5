"""NeMo's batched beam search (`malsd_batch`) with shallow fusion, for mlx-transducer's tests.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch), the model
fixtures (`make_model_fixtures.py`) and the fusion fixtures (`make_fusion_fixtures.py`:
`fusion/lm3.arpa` and the key phrases). From the repository root:

    python tests/reference/make_beam_fusion_fixtures.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_beam_fusion_fixtures.py

About a minute on two CPU cores.

NeMo 3.0 fuses an n-gram LM and a boosting tree into transducer beam search only in its
batched `malsd_batch` strategy (`BeamBatchedRNNTInfer` / `BeamBatchedTDTInfer`, the
`ModifiedALSDBatched{RNNT,TDT}Computer`s; its `default` and `maes` searches refuse a boosting
tree and take only a KenLM model). So the settings here are NeMo's decoding config with
`strategy: malsd_batch`, `beam.beam_size`, `beam.return_best_hypothesis: false` (the n-best
list), `beam.ngram_lm_model` = lm3.arpa with `beam.ngram_lm_alpha`, `beam.boosting_tree`
(the key phrases, NeMo's defaults otherwise) with `beam.boosting_tree_alpha`, and NeMo's
default `blank_lm_score_mode` (`lm_weighted_full`), `pruning_mode` (`late`), `max_symbols`
(10) and `score_norm` (true) unless a setting names others. On the CPU NeMo runs
`modified_alsd_torch` (CUDA graphs only on CUDA).

`beam_fusion.json`: versions and command, the settings, and per model (`tdt`, `rnnt`) and
setting, NeMo's n-best list of each clip decoded alone (`clips`: per hypothesis `ids`,
`score`, `frames` = `Hypothesis.timestamp` (TDT: the start frame, end minus duration),
TDT `durations`) from NeMo's own encoder output (the models' `.npz`), and all clips as one
padded batch (`batched`, the same fields). `changed` lists the clips whose best ids fusion
changed against `plain` (the script asserts there are some for each fused setting).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nemo.collections.asr.models import ASRModel
from nemo.collections.asr.parts.context_biasing.boosting_graph_batched import (
    BoostingTreeModelConfig,
)
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base
from make_fusion_fixtures import BOOST_ALPHA, DECODING, FUSION_MODELS, LM_ALPHA, padded

ROOT = base.ROOT
MODELS = ROOT / "tests" / "fixtures" / "models"
FUSION = ROOT / "tests" / "fixtures" / "fusion"
OUT = ROOT / "tests" / "fixtures" / "beam_fusion"
COMMAND = "python tests/reference/make_beam_fusion_fixtures.py"
SEED = 0
BEAM_SIZE = 4
NAMES = FUSION_MODELS
SETTINGS: dict[str, dict[str, Any]] = {
    **DECODING,  # the greedy fusion fixture's: plain, lm, boost, lm_boost
    # the other pruning and blank-scoring modes NeMo has, with both models
    "lm_boost_early_no_score": {
        "lm": LM_ALPHA,
        "boost": BOOST_ALPHA,
        "pruning_mode": "early",
        "blank_lm_score_mode": "no_score",
    },
    "lm_boost_early_weighted": {
        "lm": LM_ALPHA,
        "boost": BOOST_ALPHA,
        "pruning_mode": "early",
        "blank_lm_score_mode": "lm_weighted_full",
    },
    "lm_boost_late_no_score": {
        "lm": LM_ALPHA,
        "boost": BOOST_ALPHA,
        "pruning_mode": "late",
        "blank_lm_score_mode": "no_score",
    },
}


def set_beam(asr: ASRModel, saved: Any, setting: dict[str, Any], phrases: list[str]) -> None:
    """`malsd_batch` with the setting's fusion models, as a user sets them in NeMo's config."""
    cfg = copy.deepcopy(saved)
    with open_dict(cfg):
        cfg.strategy = "malsd_batch"
        cfg.compute_timestamps = True
        cfg.beam = {"beam_size": BEAM_SIZE, "return_best_hypothesis": False}
        if "lm" in setting:
            cfg.beam.ngram_lm_model = str(FUSION / "lm3.arpa")
            cfg.beam.ngram_lm_alpha = setting["lm"]
        if "boost" in setting:
            cfg.beam.boosting_tree = OmegaConf.structured(
                BoostingTreeModelConfig(key_phrases_list=phrases, use_triton=False)
            )
            cfg.beam.boosting_tree_alpha = setting["boost"]
        for key in ("pruning_mode", "blank_lm_score_mode"):
            if key in setting:
                cfg.beam[key] = setting[key]
    asr.change_decoding_strategy(cfg, verbose=False)


def nbest(hyps: Any, tdt: bool) -> list[dict[str, Any]]:
    out = []
    for hyp in getattr(hyps, "n_best_hypotheses", hyps):  # NeMo returns lists of Hypothesis
        timestamp = hyp.timestamp["timestep"] if isinstance(hyp.timestamp, dict) else hyp.timestamp
        out.append(
            {
                "ids": base.to_jsonable(hyp.y_sequence),
                "score": float(hyp.score),
                "frames": base.to_jsonable(timestamp),
                "durations": base.to_jsonable(hyp.token_duration) if tdt else None,
            }
        )
    return out


@torch.no_grad()
def decode(asr: ASRModel, encoded: list[np.ndarray]) -> list[list[dict[str, Any]]]:
    """NeMo's n-best lists for encoder outputs (T', D), as one zero-padded batch."""
    hyps = asr.decoding.rnnt_decoder_predictions_tensor(*padded(encoded), return_hypotheses=True)
    tdt = bool(asr.decoding.durations)
    return [nbest(h, tdt) for h in hyps]


def beam_decoding(name: str, phrases: list[str]) -> dict[str, Any]:
    asr = ASRModel.restore_from(str(MODELS / f"{name}.nemo"), map_location="cpu").eval()
    meta = json.loads((MODELS / f"{name}.json").read_text())
    with np.load(MODELS / f"{name}.npz") as data:
        encoded = {clip: data[f"{Path(clip).stem}/encoder"] for clip in meta["clips"]}
    out: dict[str, Any] = {"clips": list(encoded), "settings": {}}
    saved = copy.deepcopy(asr.cfg.decoding)
    for setting_name, setting in SETTINGS.items():
        set_beam(asr, saved, setting, phrases)
        computer = asr.decoding.decoding.decoding_computer
        kinds = [type(m).__name__ for m in (computer.fusion_models or [])]
        want = [k for f, k in (("lm", "NGramGPULanguageModel"), ("boost", "GPUBoostingTreeModel"))
                if f in setting]  # fmt: skip
        assert kinds == want, kinds
        if kinds:
            modes = {"pruning_mode": str(computer.pruning_mode),
                     "blank_lm_score_mode": str(computer.blank_lm_score_mode)}  # fmt: skip
        else:
            modes = {}
        single = {clip: decode(asr, [e])[0] for clip, e in encoded.items()}
        batched = dict(zip(encoded, decode(asr, list(encoded.values())), strict=True))
        out["settings"][setting_name] = {
            "fusion": setting,
            "modes": modes,
            "max_symbols": computer.max_symbols,
            "clips": single,
            "batched": batched,
        }
    plain = out["settings"]["plain"]["clips"]
    for setting in out["settings"].values():
        best = setting["clips"]
        setting["changed"] = [c for c in plain if best[c][0]["ids"] != plain[c][0]["ids"]]
        setting["nbest_changed"] = [
            c for c in plain if [h["ids"] for h in best[c]] != [h["ids"] for h in plain[c]]
        ]
    return out


def main() -> None:
    torch.manual_seed(SEED)
    fusion = json.loads((FUSION / "fusion.json").read_text())
    phrases = fusion["decoding"]["boosting_tree"]["key_phrases_list"]
    fixture: dict[str, Any] = {
        **base.made_by(COMMAND),
        "strategy": "malsd_batch",
        "beam_size": BEAM_SIZE,
        "lm": "fusion/lm3.arpa",
        "boosting_tree": {"key_phrases_list": phrases, "note": "NeMo's defaults otherwise"},
        "phrase_ids": fusion["phrase_ids"],
        "results": {name: beam_decoding(name, phrases) for name in NAMES},
    }
    for name, results in fixture["results"].items():
        for setting_name, setting in results["settings"].items():
            if setting_name != "plain":
                assert setting["changed"], f"{name} {setting_name}: fusion changes nothing"
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "beam_fusion.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.3f} MB)")
    for name, results in fixture["results"].items():
        for setting_name, setting in results["settings"].items():
            print(name, setting_name, "changed:", len(setting["changed"]),
                  "nbest changed:", len(setting["nbest_changed"]))  # fmt: skip


if __name__ == "__main__":
    main()
