"""NeMo's greedy CTC decoding with shallow fusion, for mlx-ctc-decoder's fused greedy search.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch), the model
fixtures (`make_model_fixtures.py`) and the fusion fixtures (`make_fusion_fixtures.py`:
its `lm3.arpa` and key phrases are the inputs here). From the repository root:

    python tests/reference/make_ctc_fusion_fixtures.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_ctc_fusion_fixtures.py

Under a minute on two CPU cores. For the CTC head of `ctc.nemo` and of `hybrid_tdt_ctc.nemo`
(one tokenizer, the fusion fixtures'), NeMo's `greedy_batch` CTC decoding
(`GreedyBatchedCTCInfer`, the PyTorch loop on the CPU) is set as a user sets it in the
decoding config: `greedy.ngram_lm_model` = lm3.arpa with `greedy.ngram_lm_alpha`,
`greedy.boosting_tree` = the key phrases with NeMo's defaults and
`greedy.boosting_tree_alpha`, and both. It decodes NeMo's own CTC log-probabilities of
each clip (the models' `.npz`, `<stem>/ctc_log_probs`) alone and all clips as one padded
batch, and `transcribe` runs on the speech clips (batch size 1; the hybrid
with its CTC head). Written to `tests/fixtures/fusion/ctc_fusion.json`: per model and
setting, per clip NeMo's per-frame labels (`alignment`, `Hypothesis.y_sequence`), the ids
after the CTC collapse (checked against NeMo's text) and the score (`Hypothesis.score`);
`batched` the same from the batch; `transcribe` the ids. `changed` lists the clips whose
ids fusion changed (the script asserts there are some for every setting).
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
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fusion_fixtures as fusion
import make_model_fixtures as base

MODELS = base.OUT
OUT = fusion.OUT / "ctc_fusion.json"
LM = fusion.OUT / "lm3.arpa"
COMMAND = "python tests/reference/make_ctc_fusion_fixtures.py"
CTC_MODELS = ["ctc", "hybrid_tdt_ctc"]
SETTINGS = fusion.DECODING  # the transducers' settings: the same alphas


def ctc_config(asr: ASRModel) -> Any:
    """The CTC decoding config as saved (a hybrid's is `aux_ctc.decoding`)."""
    return asr.cfg.aux_ctc.decoding if base.is_hybrid(asr) else asr.cfg.decoding


def set_fusion(asr: ASRModel, saved: Any, setting: dict[str, float]) -> None:
    """`greedy_batch` with the fusion models of `setting`, as a user sets them."""
    cfg = fusion.fusion_config(saved, setting, LM, fusion.PHRASES)
    with open_dict(cfg):
        cfg.strategy = "greedy_batch"
    if base.is_hybrid(asr):
        asr.change_decoding_strategy(cfg, decoder_type="ctc", verbose=False)
    else:
        asr.change_decoding_strategy(cfg, verbose=False)


@torch.no_grad()
def decode(asr: ASRModel, log_probs: list[np.ndarray]) -> list[dict[str, Any]]:
    """NeMo's greedy hypotheses for log-probabilities (T', V + 1), as one padded batch."""
    _, decoding = base.ctc_head(asr)
    lengths = torch.tensor([len(p) for p in log_probs])
    batch = torch.zeros(len(log_probs), int(lengths.max()), log_probs[0].shape[1])
    for row, p in zip(batch, log_probs, strict=True):
        row[: len(p)] = torch.from_numpy(p)
    hyps = decoding.ctc_decoder_predictions_tensor(batch, lengths, return_hypotheses=True)
    out = []
    for hyp in hyps:
        alignment = base.to_jsonable(hyp.y_sequence)
        ids, _ = base.ctc_collapse(alignment, blank=batch.shape[-1] - 1)
        assert decoding.decode_tokens_to_str_with_strip_punctuation(ids) == hyp.text
        out.append({"alignment": alignment, "ids": ids, "score": float(hyp.score)})
    return out


def fused_decoding(name: str) -> dict[str, Any]:
    asr = ASRModel.restore_from(str(MODELS / f"{name}.nemo"), map_location="cpu").eval()
    assert asr.tokenizer.vocab_size == 128
    phrase_ids = {p: asr.tokenizer.text_to_ids(p) for p in fusion.PHRASES}
    meta = json.loads((MODELS / f"{name}.json").read_text())
    with np.load(MODELS / f"{name}.npz") as data:
        log_probs = {clip: data[f"{Path(clip).stem}/ctc_log_probs"] for clip in meta["clips"]}
    speech = {clip: base.load_clip(clip) for clip in base.SPEECH_CLIPS}
    out: dict[str, Any] = {"clips": list(log_probs), "phrase_ids": phrase_ids, "settings": {}}
    saved = copy.deepcopy(ctc_config(asr))
    for setting_name, setting in SETTINGS.items():
        set_fusion(asr, saved, setting)
        computer = base.ctc_head(asr)[1].decoding
        assert type(computer).__name__ == "GreedyBatchedCTCInfer", type(computer)
        kinds = [type(m).__name__ for m in computer.fusion_models or []]
        assert kinds == [k for f, k in fusion.FUSION_CLASSES.items() if f in setting], kinds
        single = {clip: decode(asr, [p])[0] for clip, p in log_probs.items()}
        batched = dict(zip(log_probs, decode(asr, list(log_probs.values())), strict=True))
        out["settings"][setting_name] = {
            "fusion": setting,
            "clips": single,
            "batched": batched,
            # a hybrid transcribes with the head of its last `change_decoding_strategy`: CTC
            "transcribe": fusion.transcribed_sequences(asr, speech),
        }
    plain = out["settings"]["plain"]["clips"]
    for clip, hyp in plain.items():  # without fusion: the model fixture's own references
        assert hyp["ids"] == meta["clips"][clip]["ctc"]["ids"], (name, clip)
    fusion.mark_differences(out["settings"], transcribed="alignment")  # CTC: per-frame labels
    return out


def main() -> None:
    torch.manual_seed(fusion.SEED)
    fixture: dict[str, Any] = {
        **base.made_by(COMMAND),
        "lm": LM.name,
        "lm_alpha": fusion.LM_ALPHA,
        "boosting_tree": {"key_phrases_list": fusion.PHRASES, "note": "NeMo's defaults otherwise"},
        "boosting_tree_alpha": fusion.BOOST_ALPHA,
        "strategy": "greedy_batch",
        "results": {name: fused_decoding(name) for name in CTC_MODELS},
    }
    for name, results in fixture["results"].items():
        for setting_name, setting in results["settings"].items():
            if setting_name != "plain":
                assert len(setting["changed"]) >= 2, f"{name} {setting_name}: fusion changes little"
            assert not setting["batched_differences"], (name, setting_name)
            assert not setting["transcribe_differences"], (name, setting_name)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.3f} MB)")


if __name__ == "__main__":
    main()
