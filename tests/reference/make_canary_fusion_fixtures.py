"""NeMo's Canary (AED) beam search with shallow fusion, for mlx-seq2seq-decoder's tests.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch) and the Canary
checkpoint fixtures (`make_canary_checkpoint_fixtures.py`). From the repository root:

    python tests/reference/make_canary_fusion_fixtures.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_canary_fusion_fixtures.py

About a minute on two CPU cores. The model is `tests/fixtures/checkpoints/canary-180m-flash.nemo`
(NVIDIA's published canary-180m-flash config, sizes shrunk): its decoder's output layer has
as many classes as its tokenizer (832), which NeMo's fusion needs (`log_probs +=
alpha * fusion_scores` over the tokenizer's vocabulary; the `models/canary.nemo` fixture pads
its head to 304 classes for 297 tokens, so NeMo cannot fuse there).

NeMo 3.0's `MultiTaskDecoding` fuses only in its `beam` strategy (`TransformerAEDBeamInfer`
builds `BeamSearchSequenceGeneratorWithFusionModels` from `beam.ngram_lm_model` /
`ngram_lm_alpha` and `beam.boosting_tree` / `boosting_tree_alpha`; its greedy strategy
refuses an LM: "use beam strategy with beam=1"). The fusion models are advanced with
`eos_id` (the end of the sentence scored in EOS's column).

Input data (made here, not by NeMo): `canary_lm3.arpa`, a token 3-gram LM from the first
`LM_LINES` lines of the fixture corpus (`make_model_fixtures.corpus_lines`) tokenized by the
model's tokenizer as English (`text_to_ids(line, "en")`), written by
`make_fusion_fixtures.arpa_text` (absolute discounting, `<unk>`, tokens as `chr(id + 100)`).

`canary_fusion.json`: versions and command, the settings (the checkpoint's saved decoding
with `strategy: beam`, `beam_size` 4, `return_best_hypothesis: false`), the key phrases and
NeMo's `text_to_ids(phrase, "en")` of each (the tree's `source_lang`), and per setting
(`plain`, `lm`, `boost`, `lm_boost`), prompt and clip NeMo's n-best (`ids`, `score`) of the
clip alone, from NeMo's own projected encoder states (the checkpoint's
`encoder_states/<stem>`). `changed` lists the prompt/clip pairs whose best ids fusion
changed (the script asserts there are some). Batched AED beam search in NeMo 3.0.0 mixes
the clips' prompt states (CANARY.md, "Quirks"): single clips only.
"""

from __future__ import annotations

import copy
import json
import random
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
from make_fusion_fixtures import DECODING, PHRASES, arpa_text

ROOT = base.ROOT
CHECKPOINT = ROOT / "tests" / "fixtures" / "checkpoints" / "canary-180m-flash"
OUT = ROOT / "tests" / "fixtures" / "beam_fusion"
COMMAND = "python tests/reference/make_canary_fusion_fixtures.py"
SEED = 0
LM_LINES = 200
BEAM_SIZE = 4
PROMPTS = ["en_asr_pnc", "en_de_ast_pnc"]
LM_ALPHA = 0.3
BOOST_ALPHA = 1.0
ALPHAS = {"lm": LM_ALPHA, "boost": BOOST_ALPHA}
# the greedy fusion fixture's settings (plain, lm, boost, lm_boost), with this LM's alpha
SETTINGS = {name: {kind: ALPHAS[kind] for kind in setting} for name, setting in DECODING.items()}


def set_beam(asr: ASRModel, saved: Any, setting: dict[str, float], lm_path: Path) -> None:
    cfg = copy.deepcopy(saved)
    with open_dict(cfg):
        cfg.strategy = "beam"
        cfg.beam.beam_size = BEAM_SIZE
        cfg.beam.return_best_hypothesis = False
        if "lm" in setting:
            cfg.beam.ngram_lm_model = str(lm_path)
            cfg.beam.ngram_lm_alpha = setting["lm"]
        if "boost" in setting:
            cfg.beam.boosting_tree = OmegaConf.structured(
                BoostingTreeModelConfig(key_phrases_list=PHRASES, source_lang="en",
                                        depth_scaling=1.0, use_triton=False)
            )  # fmt: skip
            cfg.beam.boosting_tree_alpha = setting["boost"]
    asr.change_decoding_strategy(cfg)


@torch.no_grad()
def nbest(asr: ASRModel, states: np.ndarray, prompt: list[int]) -> list[dict[str, Any]]:
    hidden = torch.from_numpy(states)[None]
    (hyps,) = asr.decoding.decode_predictions_tensor(
        encoder_hidden_states=hidden,
        encoder_input_mask=torch.ones(1, hidden.shape[1]),
        decoder_input_ids=torch.tensor(prompt)[None],
        return_hypotheses=True,
    )
    asr.eval()  # NeMo's decoding leaves decoder and head in training mode
    return [{"ids": base.to_jsonable(h.y_sequence), "score": float(h.score)} for h in hyps]


def main() -> None:
    torch.manual_seed(SEED)
    meta = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    asr = ASRModel.restore_from(str(CHECKPOINT.with_suffix(".nemo")), map_location="cpu").eval()
    tokenizer = asr.tokenizer
    with np.load(CHECKPOINT.with_suffix(".npz")) as data:
        states = {clip: data[f"encoder_states/{Path(clip).stem}"] for clip in meta["clips"]}
    lines = base.corpus_lines(random.Random(base.SEED))[:LM_LINES]
    OUT.mkdir(parents=True, exist_ok=True)
    lm_path = OUT / "canary_lm3.arpa"
    lm_path.write_text(
        arpa_text([tokenizer.text_to_ids(line, "en") for line in lines], 3, unk=True)
    )
    saved = copy.deepcopy(asr.cfg.decoding)
    results: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        set_beam(asr, saved, setting, lm_path)
        generator = asr.decoding.decoding.beam_search
        kinds = [type(m).__name__ for m in getattr(generator, "fusion_models", [])]
        results[name] = {
            "fusion": setting,
            "generator": type(generator).__name__,
            "fusion_models": kinds,
            "max_generation_delta": generator.max_delta_len,
            "length_penalty": generator.len_pen,
            "nbest": {
                prompt: {
                    clip: nbest(asr, states[clip], meta["prompts"][prompt]["ids"])
                    for clip in states
                }
                for prompt in PROMPTS
            },
        }
    plain = results["plain"]["nbest"]
    for name, result in results.items():
        result["changed"] = [
            f"{prompt}/{clip}"
            for prompt in PROMPTS
            for clip in states
            if result["nbest"][prompt][clip][0]["ids"] != plain[prompt][clip][0]["ids"]
        ]
        if name != "plain":
            assert len(result["changed"]) >= 2, f"{name}: fusion changes little"
    fixture = {
        **base.made_by(COMMAND),
        "checkpoint": "checkpoints/canary-180m-flash",
        "lm": "beam_fusion/canary_lm3.arpa",
        "lm_lines": LM_LINES,
        "beam_size": BEAM_SIZE,
        "vocab_size": tokenizer.vocab_size,
        "eos_id": tokenizer.eos,
        "pad_id": tokenizer.pad,
        "boosting_tree": {
            "key_phrases_list": PHRASES,
            "source_lang": "en",
            "depth_scaling": 1.0,
            "note": "NeMo's defaults otherwise (AEDBeamInferConfig's depth_scaling)",
        },
        "phrase_ids": {p: tokenizer.text_to_ids(p, "en") for p in PHRASES},
        "prompts": {p: meta["prompts"][p]["ids"] for p in PROMPTS},
        "clips": list(states),
        "results": results,
    }
    path = OUT / "canary_fusion.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    for written in (lm_path, path):
        print(f"wrote {written} ({written.stat().st_size / 1e6:.3f} MB)")
    for name, result in results.items():
        print(
            name, result["generator"], result["fusion_models"], "changed:", len(result["changed"])
        )


if __name__ == "__main__":
    main()
