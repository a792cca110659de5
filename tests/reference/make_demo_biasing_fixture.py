"""NeMo's transcripts of the demo model's held-out clips with phrase boosting and LM fusion.

Needs the `reference` group, the bundled demo model (apps/parakeet/src/nemo_mlx_parakeet/
demo/demo.nemo) and its held-out clips (tests/fixtures/demo/). From the repository root:

    python tests/reference/make_demo_biasing_fixture.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_demo_biasing_fixture.py

About two minutes on two CPU cores. Restores the `.nemo` with NeMo 3.0.0 and runs its
`transcribe` (batch size 1, greedy_batch as saved) on every held-out clip with each head
(the TDT head, then the CTC head) and each setting, set in the decoding config as a user
sets it:
- `boost`: `greedy.boosting_tree` with `key_phrases_list` = PHRASES (words the model gets
  wrong on some clips, and words it gets right), NeMo's defaults otherwise, and
  `greedy.boosting_tree_alpha` = BOOST_ALPHA;
- `lm`: `greedy.ngram_lm_model` = `demo_lm.arpa`, a token 3-gram LM counted from the
  demo's training sentences (`tools/demo_corpus.py`, the train split, LM_SENTENCES of them;
  never the held-out ones) tokenized by the model's tokenizer (written by
  `make_fusion_fixtures.arpa_text`, tokens as `chr(id + 100)`), `greedy.ngram_lm_alpha` =
  LM_ALPHA;
- `plain`: as saved (the existing `nemo_transcripts.json` gives the same; checked).

Writes tests/fixtures/demo/biasing.json: per head and setting, per clip NeMo's text and
token ids (`Hypothesis.y_sequence`; for CTC collapsed from NeMo's per-frame labels), NeMo's
WER, the clips whose text the setting changed (`changed`, asserted non-empty), and for
`boost` the per-phrase counts of the boosted words in the references and hypotheses; and
tests/fixtures/demo/demo_lm.arpa (the LM input). tests/test_demo_biasing.py compares our
CLI's output with it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from nemo.collections.asr.metrics.wer import word_error_rate
from nemo.collections.asr.models import ASRModel
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import demo_corpus
import make_demo_fixture as demo
import make_fusion_fixtures as fusion
import make_model_fixtures as base

COMMAND = "python tests/reference/make_demo_biasing_fixture.py"
OUT = demo.FIXTURE / "biasing.json"
LM = demo.FIXTURE / "demo_lm.arpa"
PHRASES = ["anna", "schools", "bread", "free", "sea week", "hospital", "station"]
BOOST_ALPHA = 1.0
LM_ALPHA = 0.5
LM_SENTENCES = 2000
CORPUS_SEED = 1234  # tools/train_demo_model.py's SEED
SETTINGS: dict[str, dict[str, float]] = {
    "plain": {},
    "boost": {"boost": BOOST_ALPHA},
    "lm": {"lm": LM_ALPHA},
}


def greedy_config(saved: Any, setting: dict[str, float]) -> Any:
    """`greedy_batch` with the fusion models of `setting` (the demo's LM and phrases)."""
    cfg = fusion.fusion_config(saved, setting, LM, PHRASES)
    with open_dict(cfg):
        cfg.strategy = "greedy_batch"
    return cfg


def saved_decodings(asr: ASRModel) -> dict[str, Any]:
    """The decoding configs as saved, per head: the transducer's and the CTC head's."""
    return {
        "rnnt": copy.deepcopy(asr.cfg.decoding),
        "ctc": copy.deepcopy(asr.cfg.aux_ctc.decoding),
    }


def transcribe_with(asr: ASRModel, head: str, cfg: Any, paths: list[str]) -> list[Any]:
    """NeMo's `transcribe` (batch size 1) of the clips by `head` with its decoding config set
    to `cfg`, as a user sets it; one hypothesis per clip (a beam's best)."""
    asr.change_decoding_strategy(cfg, decoder_type=head, verbose=False)
    asr.eval()
    hyps = asr.transcribe(paths, batch_size=1, verbose=False)
    asr.eval()  # transcribe leaves the modules in training mode
    return [h[0] if isinstance(h, list) else h for h in hyps]


def changed_clips(clips: dict[str, dict], plain: dict[str, dict]) -> list[str]:
    """The clips whose text differs from the same search's without fusion (`plain`)."""
    return [f for f in clips if clips[f]["text"] != plain[f]["text"]]


def word_counts(texts: list[str]) -> dict[str, int]:
    """How often each phrase occurs as whole words in the texts."""
    return {p: sum(f" {t} ".count(f" {p} ") for t in texts) for p in PHRASES}


def main() -> None:
    asr, model_file, files, paths = demo.restore_with_clips()
    heldout = json.loads((demo.FIXTURE / "heldout.json").read_text())
    plain_fixture = json.loads((demo.FIXTURE / "nemo_transcripts.json").read_text())
    refs = [clip["text"] for clip in heldout["clips"]]
    held = {" ".join(r.split()) for r in refs}
    lines = demo_corpus.sentences("train", LM_SENTENCES, CORPUS_SEED)
    assert not held & set(lines), "the LM must not see the held-out sentences"
    token_lines = [asr.tokenizer.text_to_ids(line) for line in lines]
    LM.write_text(fusion.arpa_text(token_lines, 3, unk=True))
    saved = saved_decodings(asr)
    heads: dict[str, Any] = {}
    for head in ("rnnt", "ctc"):
        heads[head] = {}
        for name, setting in SETTINGS.items():
            hyps = transcribe_with(asr, head, greedy_config(saved[head], setting), paths)
            texts = [h.text for h in hyps]
            ids = [demo._ids(h, asr, head) for h in hyps]
            heads[head][name] = {
                "fusion": setting,
                "wer": word_error_rate(texts, refs),
                "clips": {
                    f: {"text": t, "ids": i} for f, t, i in zip(files, texts, ids, strict=True)
                },
            }
            if "boost" in setting:
                heads[head][name]["phrase_counts"] = {
                    "references": word_counts(refs),
                    "hypotheses": word_counts(texts),
                    "plain_hypotheses": word_counts(
                        [heads[head]["plain"]["clips"][f]["text"] for f in files]
                    ),
                }
        key = "text" if head == "rnnt" else "ctc_text"
        for f in files:  # without fusion: the demo fixture's own transcripts
            assert heads[head]["plain"]["clips"][f]["text"] == plain_fixture["clips"][f][key], f
        plain = heads[head]["plain"]["clips"]
        for name, result in heads[head].items():
            result["changed"] = changed_clips(result["clips"], plain)
            if name != "plain":
                assert result["changed"], f"{head} {name}: nothing changes"
    out = {
        **base.made_by(COMMAND),
        "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "transcribe": {"batch_size": 1, "strategy": "greedy_batch"},
        "phrases": PHRASES,
        "boosting_tree": "NeMo's BoostingTreeModelConfig defaults (context_score 1, depth_scaling 2)",
        "boosting_tree_alpha": BOOST_ALPHA,
        "lm": {
            "file": LM.name,
            "alpha": LM_ALPHA,
            "order": 3,
            "sentences": f"tools/demo_corpus.sentences('train', {LM_SENTENCES}, {CORPUS_SEED})",
        },
        "heads": heads,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"wrote {OUT} ({OUT.stat().st_size / 1e6:.3f} MB), {LM} ({LM.stat().st_size / 1e6:.3f} MB)"
    )
    for head, results in heads.items():
        for name, result in results.items():
            print(head, name, f"WER {result['wer']:.4f}", "changed:", result["changed"])


if __name__ == "__main__":
    main()
