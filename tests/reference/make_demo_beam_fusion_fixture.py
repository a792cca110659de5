"""NeMo's beam search with phrase boosting and LM fusion on the demo model's held-out clips.

Needs the `reference` group, the bundled demo model (apps/parakeet/src/nemo_mlx_parakeet/
demo/demo.nemo), its held-out clips, `demo_lm.arpa` (make_demo_biasing_fixture.py) and NeMo's
CTC log-probs of the clips (`word_spotter_logprobs.npz`, make_word_spotter_fixture.py). From
the repository root:

    python tests/reference/make_demo_beam_fusion_fixture.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_demo_beam_fusion_fixture.py

About eight minutes on two (shared) CPU cores. Restores the `.nemo` with NeMo 3.0.0 and runs its `transcribe` (batch size 1) on every clip
with each head and setting, the decoding config set as a user sets it (BEAM_SIZE beams):
- TDT head: `plain` is the `beam` strategy (what `parakeet --decoding beam` runs without
  fusion); `boost` and `lm` are `malsd_batch` (NeMo's only transducer beam with fusion
  models) with `beam.boosting_tree` (the demo phrases, NeMo's defaults otherwise) and
  `beam.boosting_tree_alpha`, or `beam.ngram_lm_model` / `beam.ngram_lm_alpha`; NeMo's
  defaults for the rest (`score_norm`, `pruning_mode`, `blank_lm_score_mode`).
- CTC head: the `beam_batch` strategy (`BeamBatchedCTCInfer`), `beam_beta` 0 and
  `beam_threshold` 20 (the values `parakeet` uses), with the same fusion models in `beam`.
For the CTC head it also runs `BeamBatchedCTCInfer` itself on NeMo's log-probs of each clip
with the n-best kept (`return_best_hypothesis=False`), for the decoder's own test.

Writes tests/fixtures/demo/beam_fusion.json: per head and setting, per clip NeMo's text and
ids; `nbest` (CTC) the n-best ids and scores; for the TDT head also `malsd_plain`,
`malsd_batch` without fusion models; `changed`: the clips whose text the fusion changed
against the same search without it (`malsd_plain` for the TDT head, `plain` for CTC;
asserted non-empty).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nemo.collections.asr.models import ASRModel
from nemo.collections.asr.parts.submodules.ctc_beam_decoding import BeamBatchedCTCInfer
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_demo_biasing_fixture as biasing
import make_demo_fixture as demo
import make_fusion_fixtures as fusion
import make_model_fixtures as base

COMMAND = "python tests/reference/make_demo_beam_fusion_fixture.py"
OUT = demo.FIXTURE / "beam_fusion.json"
LOGPROBS = demo.FIXTURE / "word_spotter_logprobs.npz"
BEAM_SIZE = 4
CTC_BEAM = {"beam_beta": 0.0, "beam_threshold": 20.0}


def beam_config(head: str, saved: Any, setting: dict[str, float], malsd: bool = False) -> Any:
    """The head's beam search (BEAM_SIZE beams) with the fusion models of `setting` (the
    demo's LM and phrases): `beam_batch` for CTC; `malsd_batch` (with fusion, or `malsd`)
    or `beam` for the transducer."""
    cfg = copy.deepcopy(saved)
    with open_dict(cfg):
        if head == "ctc":
            cfg.strategy = "beam_batch"
            cfg.beam = {"beam_size": BEAM_SIZE, "return_best_hypothesis": True, **CTC_BEAM}
        else:
            cfg.strategy = "malsd_batch" if setting or malsd else "beam"
            cfg.beam = {"beam_size": BEAM_SIZE, "return_best_hypothesis": True}
    return fusion.fusion_config(cfg, setting, biasing.LM, biasing.PHRASES, section="beam")


@torch.no_grad()
def ctc_nbest(asr: ASRModel, setting: dict[str, float], log_probs: dict[str, np.ndarray]) -> dict:
    """BeamBatchedCTCInfer on NeMo's log-probs of each clip alone, the n-best kept."""
    infer = BeamBatchedCTCInfer(
        blank_index=asr.decoder.blank_idx, beam_size=BEAM_SIZE, return_best_hypothesis=False,
        ngram_lm_model=str(biasing.LM) if "lm" in setting else None,
        ngram_lm_alpha=setting.get("lm", 1.0),
        boosting_tree=fusion.boosting_tree_config(biasing.PHRASES) if "boost" in setting else None,
        boosting_tree_alpha=setting.get("boost", 0.0),
        allow_cuda_graphs=False, tokenizer=asr.tokenizer, **CTC_BEAM,
    )  # fmt: skip
    out = {}
    for stem, probs in log_probs.items():
        (nbest,) = infer(
            decoder_output=torch.from_numpy(probs)[None],
            decoder_lengths=torch.tensor([len(probs)]),
        )[0]
        out[stem] = [
            {"ids": [int(i) for i in h.y_sequence], "score": float(h.score)}
            for h in nbest.n_best_hypotheses
        ]
    return out


def main() -> None:
    asr, model_file, files, paths = demo.restore_with_clips()
    with np.load(LOGPROBS) as data:
        log_probs = {name: data[name] for name in data.files}
    saved = biasing.saved_decodings(asr)
    heads: dict[str, Any] = {}
    for head in ("rnnt", "ctc"):
        heads[head] = {}
        for name, setting in biasing.SETTINGS.items():
            cfg = beam_config(head, saved[head], setting)
            hyps = biasing.transcribe_with(asr, head, cfg, paths)
            result = {
                "fusion": setting,
                "strategy": asr.cfg.aux_ctc.decoding.strategy if head == "ctc"
                else asr.cfg.decoding.strategy,
                "clips": {f: {"text": h.text, "ids": [int(i) for i in h.y_sequence]}
                          for f, h in zip(files, hyps, strict=True)},
            }  # fmt: skip
            if head == "ctc":
                result["nbest"] = ctc_nbest(asr, setting, log_probs)
            heads[head][name] = result
        if head == "rnnt":  # the fused searches' own algorithm without fusion: what fusion changes
            cfg = beam_config(head, saved[head], {}, malsd=True)
            hyps = biasing.transcribe_with(asr, head, cfg, paths)
            heads[head]["malsd_plain"] = {"fusion": {}, "strategy": "malsd_batch", "clips": {
                f: {"text": h.text, "ids": [int(i) for i in h.y_sequence]}
                for f, h in zip(files, hyps, strict=True)}}  # fmt: skip
        for name, result in heads[head].items():
            base_name = "malsd_plain" if head == "rnnt" and name in ("boost", "lm") else "plain"
            plain = heads[head][base_name]["clips"]
            result["changed"] = biasing.changed_clips(result["clips"], plain)
            if name in ("boost", "lm"):
                assert result["changed"], f"{head} {name}: nothing changes"
    out = {
        **base.made_by(COMMAND),
        "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "transcribe": {"batch_size": 1},
        "beam_size": BEAM_SIZE,
        "ctc_beam": CTC_BEAM,
        "phrases": biasing.PHRASES,
        "boosting_tree_alpha": biasing.BOOST_ALPHA,
        "lm": {"file": biasing.LM.name, "alpha": biasing.LM_ALPHA},
        "heads": heads,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.3f} MB)")
    for head, results in heads.items():
        for name, result in results.items():
            print(head, name, result["strategy"], "changed:", result["changed"])


if __name__ == "__main__":
    main()
