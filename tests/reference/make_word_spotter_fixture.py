"""NeMo's CTC-based word spotter on the demo model's held-out clips, and the text it merges.

Needs the `reference` group, the bundled demo model (apps/parakeet/src/nemo_mlx_parakeet/
demo/demo.nemo, a hybrid TDT-CTC model) and its held-out clips (tests/fixtures/demo/). From
the repository root:

    python tests/reference/make_word_spotter_fixture.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_word_spotter_fixture.py

Follows NeMo's `scripts/asr_context_biasing/eval_greedy_decoding_with_context_biasing.py`
(the recipe NeMo's docs give for its word spotter) for a hybrid model, with NeMo 3.0.0's
own functions (`nemo.collections.asr.parts.context_biasing`):
- CTC log-probs: the model's `forward` on batches of one clip from its transcribe data
  loader, then `ctc_decoder(encoder_output=...)`, cut to the encoded length (the script's
  hybrid branch; batch size 1 here, so no padding);
- the context graph: `ContextGraphCTC(blank_id=decoder.blank_idx)` with each phrase of
  PHRASES as its own single spelling, tokenized by `tokenizer.text_to_ids` (the script's
  context file, a line `word_spelling` per phrase, lowercased; ours are lowercase already),
  plus ALT_SPELLINGS (a word with a second spelling, as the script's `gpu_gpu_g p u`);
- `run_word_spotter(logprobs, graph, model, blank_idx, beam_threshold, cb_weight,
  ctc_ali_token_weight)` for each setting of SETTINGS (the script's defaults, then a larger
  context score), NeMo's defaults for the other thresholds;
- where words were spotted, `merge_alignment_with_ws_hyps` with the per-frame argmax
  (`decoder_type="ctc"`) and with the TDT head's `greedy_batch` hypothesis
  (`decoder_type="rnnt"`, from `decoding.rnnt_decoder_predictions_tensor` on the same
  encoder output); elsewhere the plain greedy texts, as the script does.

Writes tests/fixtures/demo/word_spotter.json: per setting and clip, the spotted words
(word, score, start_frame, end_frame), the merged CTC and TDT texts and the plain ones, the
TDT hypothesis (ids, `timestamp` frames), the tokenizer's pieces, and
the clips whose text the spotter changed (asserted non-empty); and
tests/fixtures/demo/word_spotter_logprobs.npz: NeMo's CTC log-probs of every clip (so that
the spotter's test runs it on NeMo's own input, bit for bit).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from nemo.collections.asr.models import ASRModel
from nemo.collections.asr.parts import context_biasing
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_demo_fixture as demo
import make_model_fixtures as base

COMMAND = "python tests/reference/make_word_spotter_fixture.py"
OUT = demo.FIXTURE / "word_spotter.json"
LOGPROBS = demo.FIXTURE / "word_spotter_logprobs.npz"
PHRASES = ["anna", "schools", "bread", "free", "sea week", "hospital", "station"]
ALT_SPELLINGS = {"seaweek": ["seaweek", "sea week"]}
SETTINGS = {
    "default": {"beam_threshold": 5.0, "context_score": 3.0, "ctc_ali_token_weight": 0.6},
    "strong": {"beam_threshold": 7.0, "context_score": 5.0, "ctc_ali_token_weight": 0.3},
}


def ctc_logprobs(asr: ASRModel, paths: list[str]) -> tuple[list[np.ndarray], list]:
    """The script's hybrid branch: CTC log-probs and encoder output per clip (batch of one)."""
    logprobs, encoded_all = [], []
    with tempfile.TemporaryDirectory() as tmpdir:
        with open(Path(tmpdir) / "manifest.json", "w", encoding="utf-8") as manifest:
            for path in paths:  # the script's manifest of the clips
                entry = {"audio_filepath": path, "duration": 100000, "text": ""}
                manifest.write(json.dumps(entry) + "\n")
        config = {"paths2audio_files": paths, "batch_size": 1, "temp_dir": tmpdir,
                  "num_workers": 0, "channel_selector": None, "augmentor": None}  # fmt: skip
        loader = asr._setup_transcribe_dataloader(config)
        with torch.no_grad():
            for batch in loader:
                encoded, encoded_len = asr.forward(
                    input_signal=batch[0], input_signal_length=batch[1]
                )
                out = asr.ctc_decoder(encoder_output=encoded)
                n = int(encoded_len[0])
                logprobs.append(out[0, :n].numpy())
                encoded_all.append((encoded[:, :, :n], encoded_len))
    return logprobs, encoded_all


def tdt_hypotheses(asr: ASRModel, encoded_all: list) -> list:
    """The script's transducer decoding: greedy_batch with label looping, return_hypotheses."""
    asr.change_decoding_strategy(None, verbose=False)
    cfg = copy.deepcopy(asr.cfg.decoding)
    with open_dict(cfg):
        cfg.strategy = "greedy_batch"
        cfg.greedy.loop_labels = True
    asr.change_decoding_strategy(cfg, decoder_type="rnnt", verbose=False)
    hyps = []
    with torch.no_grad():
        for encoded, encoded_len in encoded_all:
            hyps.append(
                asr.decoding.rnnt_decoder_predictions_tensor(
                    encoded, encoded_len, return_hypotheses=True
                )[0]
            )
    return hyps


def main() -> None:
    asr, model_file, files, paths = demo.restore_with_clips()
    logprobs, encoded_all = ctc_logprobs(asr, paths)
    asr.eval()
    tdt = tdt_hypotheses(asr, encoded_all)
    blank = asr.decoder.blank_idx
    items = [[p, [asr.tokenizer.text_to_ids(p)]] for p in PHRASES]
    items += [[w, [asr.tokenizer.text_to_ids(s) for s in spellings]]
              for w, spellings in ALT_SPELLINGS.items()]  # fmt: skip
    graph = context_biasing.ContextGraphCTC(blank_id=blank)
    graph.add_to_graph(items)
    results = {}
    for name, hp in SETTINGS.items():
        clips = {}
        for f, lp, hyp in zip(files, logprobs, tdt, strict=True):
            spotted = context_biasing.run_word_spotter(
                lp, graph, asr, blank_idx=blank, beam_threshold=hp["beam_threshold"],
                cb_weight=hp["context_score"], ctc_ali_token_weight=hp["ctc_ali_token_weight"],
            )  # fmt: skip
            preds = np.argmax(lp, axis=1)
            plain_ctc = asr.ctc_decoding.ctc_decoder_predictions_tensor(
                torch.tensor(preds).unsqueeze(0)
            )[0].text
            entry = {
                "spotted": [[w.word, w.score, w.start_frame, w.end_frame] for w in spotted],
                "plain_ctc_text": plain_ctc,
                "plain_tdt_text": hyp.text,
                "tdt_ids": [int(i) for i in hyp.y_sequence],
                "tdt_frames": [int(t) for t in hyp.timestamp],
                "ctc_text": plain_ctc,
                "tdt_text": hyp.text,
            }
            if spotted:
                entry["ctc_text"] = context_biasing.merge_alignment_with_ws_hyps(
                    preds, asr, copy.deepcopy(spotted), decoder_type="ctc", blank_idx=blank
                )[0]
                entry["tdt_text"] = context_biasing.merge_alignment_with_ws_hyps(
                    copy.deepcopy(hyp), asr, copy.deepcopy(spotted), decoder_type="rnnt",
                    blank_idx=blank,
                )[0]  # fmt: skip
            clips[f] = entry
        changed = {
            head: [f for f in files if clips[f][f"{head}_text"] != clips[f][f"plain_{head}_text"]]
            for head in ("ctc", "tdt")
        }
        for head, fs in changed.items():
            assert fs, f"{name} {head}: the spotter changes nothing"
        results[name] = {"settings": hp, "clips": clips, "changed": changed}
    np.savez_compressed(
        LOGPROBS, **{Path(f).stem: lp for f, lp in zip(files, logprobs, strict=True)}
    )
    out = {
        **base.made_by(COMMAND),
        "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "blank_id": blank,
        "phrases": PHRASES,
        "alt_spellings": ALT_SPELLINGS,
        "graph_items": items,
        "pieces": asr.tokenizer.ids_to_tokens(list(range(blank))),
        "thresholds": "run_word_spotter's defaults: keyword_threshold -5, blank_threshold 0.8, "
        "non_blank_threshold 0.001; merge intersection_threshold 30",
        "settings": results,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    for name, result in results.items():
        print(name, result["changed"])
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.3f} MB), {LOGPROBS} "
          f"({LOGPROBS.stat().st_size / 1e6:.3f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
