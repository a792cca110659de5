"""NeMo's greedy transducer decoding boosted by a second phrase list, for per-item trees.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch), the model
fixtures and the fusion fixtures (`make_fusion_fixtures.py`, whose `decoding` section holds
NeMo's greedy decoding boosted by its key phrases, list A). From the repository root:

    python tests/reference/make_per_item_fusion_fixtures.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_per_item_fusion_fixtures.py

NeMo's per-stream boosting (`GPUBiasingMultiModel`, `enable_per_stream_biasing`) gives each
item of a batch its own tree; for one item its scores are that tree's times its alpha, as a
`greedy.boosting_tree` with `boosting_tree_alpha` gives them. So the references are NeMo's
greedy decoding (`greedy_batch`) of each clip alone with `greedy.boosting_tree` = list B
(`PHRASES_B`, NeMo's defaults otherwise, alpha `BOOST_ALPHA`), next to list A's in
`fusion/fusion.json`: a batch whose items carry A and B in turn must give each item its own
list's result. `per_item.json`: versions and command, list B and NeMo's `text_to_ids` of each
phrase, per model and clip `ids`, `frames`, TDT `durations`, and `differs_from_a` (the clips
whose ids lists A and B boost differently; the script asserts there are some).
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
    GPUBoostingTreeModel,
)
from nemo.collections.asr.parts.utils.rnnt_utils import batched_hyps_to_hypotheses
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base
from make_fusion_fixtures import BOOST_ALPHA, FUSION_MODELS, decode, padded

ROOT = base.ROOT
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "fusion"
COMMAND = "python tests/reference/make_per_item_fusion_fixtures.py"
PHRASES_B = ["tired dog", "hundred", "sailors of the north", "quiet", "people", "seven"]


def boosted(name: str) -> dict[str, Any]:
    asr = ASRModel.restore_from(str(MODELS / f"{name}.nemo"), map_location="cpu").eval()
    meta = json.loads((MODELS / f"{name}.json").read_text())
    with np.load(MODELS / f"{name}.npz") as data:
        encoded = {clip: data[f"{Path(clip).stem}/encoder"] for clip in meta["clips"]}
    cfg = copy.deepcopy(asr.cfg.decoding)
    with open_dict(cfg):
        cfg.compute_timestamps = True
        cfg.greedy.boosting_tree = OmegaConf.structured(
            BoostingTreeModelConfig(key_phrases_list=PHRASES_B, use_triton=False)
        )
        cfg.greedy.boosting_tree_alpha = BOOST_ALPHA
    asr.change_decoding_strategy(cfg, verbose=False)
    models = asr.decoding.decoding.decoding_computer.fusion_models
    assert [type(m).__name__ for m in models] == ["GPUBoostingTreeModel"]
    return {clip: decode(asr, [e])[0] for clip, e in encoded.items()}


LISTS = ["a", "b", None]  # cycled over a batch's items, from offset `shift`
SHIFTS = [0, 1, 2]


@torch.no_grad()
def per_stream(name: str, phrases_a: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """NeMo's own per-stream boosting: `greedy.enable_per_stream_biasing`, lists A and B
    added to the decoder's `GPUBiasingMultiModel` (alpha `BOOST_ALPHA` each), all clips as
    one padded batch whose items carry A, B and none in turn (`multi_biasing_ids`, -1 for
    none), for each shift of that cycle: per shift and clip `list`, `ids`, `frames`, TDT
    `durations`."""
    asr = ASRModel.restore_from(str(MODELS / f"{name}.nemo"), map_location="cpu").eval()
    meta = json.loads((MODELS / f"{name}.json").read_text())
    with np.load(MODELS / f"{name}.npz") as data:
        encoded = [data[f"{Path(clip).stem}/encoder"] for clip in meta["clips"]]
    cfg = copy.deepcopy(asr.cfg.decoding)
    with open_dict(cfg):
        cfg.greedy.enable_per_stream_biasing = True
    asr.change_decoding_strategy(cfg, verbose=False)
    computer = asr.decoding.decoding.decoding_computer
    ids = {}
    for key, phrases in (("a", phrases_a), ("b", PHRASES_B)):
        tree = GPUBoostingTreeModel.from_config(
            OmegaConf.structured(
                BoostingTreeModelConfig(key_phrases_list=phrases, use_triton=False)
            ),
            tokenizer=asr.tokenizer,
        )
        ids[key] = computer.biasing_multi_model.add_model(tree, alpha=BOOST_ALPHA)
    batch, lengths = padded(encoded)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    tdt = bool(asr.decoding.durations)
    for shift in SHIFTS:
        lists = [LISTS[(i + shift) % len(LISTS)] for i in range(len(encoded))]
        model_ids = torch.tensor([-1 if w is None else ids[w] for w in lists])
        batched, _ = computer(x=batch.transpose(1, 2), out_len=lengths, multi_biasing_ids=model_ids)
        hyps = batched_hyps_to_hypotheses(batched, batch_size=len(encoded))
        out[str(shift)] = {
            clip: {
                "list": which,
                "ids": base.to_jsonable(hyp.y_sequence),
                "frames": base.to_jsonable(hyp.timestamp),
                "durations": base.to_jsonable(hyp.token_duration) if tdt else None,
            }
            for clip, which, hyp in zip(meta["clips"], lists, hyps, strict=True)
        }
    return out


def main() -> None:
    torch.manual_seed(0)
    fusion = json.loads((OUT / "fusion.json").read_text())
    tokenizer = ASRModel.restore_from(str(MODELS / "tdt.nemo"), map_location="cpu").tokenizer
    results = {}
    for name in FUSION_MODELS:
        clips = boosted(name)
        list_a = fusion["decoding"]["results"][name]["settings"]["boost"]["clips"]
        differs = [c for c in clips if clips[c]["ids"] != list_a[c]["ids"]]
        assert len(differs) >= 2, f"{name}: lists A and B boost alike"
        plain = fusion["decoding"]["results"][name]["settings"]["plain"]["clips"]
        single = {"a": list_a, "b": clips, None: plain}
        streams = per_stream(name, fusion["decoding"]["boosting_tree"]["key_phrases_list"])
        # NeMo's per-stream batch against each clip alone with its list (ids and frames)
        stream_differences = [
            f"{shift}/{clip}"
            for shift, items in streams.items()
            for clip, item in items.items()
            if [item["ids"], item["frames"]]
            != [single[item["list"]][clip]["ids"], single[item["list"]][clip]["frames"]]
        ]
        results[name] = {"clips": clips, "differs_from_a": differs, "per_stream": streams,
                         "per_stream_differences": stream_differences}  # fmt: skip
    fixture = {
        **base.made_by(COMMAND),
        "list_a": "fusion.json: decoding.boosting_tree, settings.boost",
        "phrases_b": PHRASES_B,
        "phrase_ids_b": {p: tokenizer.text_to_ids(p) for p in PHRASES_B},
        "boosting_tree_alpha": BOOST_ALPHA,
        "results": results,
    }
    path = OUT / "per_item.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.3f} MB)")
    for name, result in results.items():
        print(name, "differs from list A:", len(result["differs_from_a"]),
              "per-stream differences:", result["per_stream_differences"])  # fmt: skip


if __name__ == "__main__":
    main()
