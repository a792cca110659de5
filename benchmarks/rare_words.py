"""Rare words with and without phrase boosting: NeMo's `transcribe` and this project's, on a
variant of the demo model whose training corpus makes a few names and number words rare.

    python benchmarks/rare_words.py --train   # the variant: about 25 min, one torch thread
    python benchmarks/rare_words.py           # the held-out set, both systems, the table
    python benchmarks/rare_words.py --model apps/parakeet/src/nemo_mlx_parakeet/demo/demo.nemo
                                              # the control: the committed model (not rare)

Needs this workspace (jiwer), the `reference` group (NeMo 3.0.0, torch, scipy) and
espeak-ng in one environment.

The variant (`--train`): `tools/train_demo_model.py` with `--rare` RARE `--rare-max`
RARE_MAX (each rare word in at most that many training sentences; the sentences the demo
corpus would otherwise have drawn, its voices and everything else as for the committed
model) and the smaller budget of TRAIN_ARGS, into the git-ignored
`.benchmarks-cache/rare-words/model/`; the committed demo model is not touched (`--rare`
implies `--no-write`).

The held-out set: the first CLIPS sentences of the demo corpus's test split (sentences
never trained on, split by a hash of the sentence) that hold at least one rare word,
spoken by the test split's voices (variants and two accents never trained on), made by
the training script's own `synthesise`; deterministic (seeded), cached.

Both systems decode greedily (NeMo: `greedy_batch`), TDT head then CTC head, plain and
with a boosting tree of the rare words (NeMo's `greedy.boosting_tree`, its defaults,
`boosting_tree_alpha` BOOST_ALPHA: NeMo's per-request weight and this project's default;
ours: `transcribe(..., boost=RARE)`), batch BATCH. Our token ids and texts must equal
NeMo's on every clip (asserted). Scored by jiwer: the WER, and the rare words' error rate
as NeMo's context-biasing recipe counts them (`compute_fscore`: on the word alignment, a
rare reference word recognised is a hit, a rare hypothesis word where the reference has
another word is a false alarm): (misses + false alarms) / occurrences.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from _common import CACHE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "reference"))
import demo_corpus as corpus  # noqa: E402
import train_demo_model as training  # noqa: E402  (tools/ is not a package)

WORK = CACHE / "rare-words"
MODEL_DIR = WORK / "model"
MODEL = MODEL_DIR / "demo.nemo"
HELDOUT = WORK / "heldout"
RARE = ["lucy", "peter", "sarah", "james", "thirteen", "seventy", "ninety"]
RARE_MAX = 5
TRAIN_ARGS = ["--train-clips", "5000", "--val-clips", "100", "--test-clips", "50",
              "--epochs", "8", "--max-minutes", "25", "--threads", "1"]  # fmt: skip
CLIPS = 100
BOOST_ALPHA = 1.0
BATCH = 16
HEADS = {"tdt": "rnnt", "ctc": "ctc"}  # ours: NeMo's decoder_type


def train() -> None:
    """The variant, by the demo's own training script (its log goes to the terminal)."""
    command = [sys.executable, str(ROOT / "tools" / "train_demo_model.py"), *TRAIN_ARGS,
               "--rare", ",".join(RARE), "--rare-max", str(RARE_MAX), "--work", str(MODEL_DIR)]  # fmt: skip
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def heldout(workers: int) -> list[dict]:
    """CLIPS held-out clips holding rare words: their paths and sentences (cached)."""
    reserved = frozenset({training.EXAMPLE.text})
    pool = corpus.sentences("test", 40 * CLIPS, training.SEED, reserved)
    texts = [t for t in pool if set(RARE) & set(t.split())][:CLIPS]
    assert len(texts) == CLIPS, len(texts)
    utts = corpus.utterances("test", texts, training.SEED)
    HELDOUT.mkdir(parents=True, exist_ok=True)
    jobs = [(u, str(HELDOUT / f"{u.name}.wav")) for u in utts]
    spec = HELDOUT / "spec.json"
    if not spec.exists() or spec.read_text() != json.dumps([u.text for u in utts]):
        with Pool(workers) as p:
            p.map(training.write_clip, jobs)
        spec.write_text(json.dumps([u.text for u in utts]))
    return [{"path": path, "text": u.text, "voice": u.voice} for u, path in jobs]


def nemo(model: Path, paths: list[str]) -> dict[tuple[str, str], dict]:
    """NeMo's texts and ids per (head, setting), its decoding config set as a user sets it."""
    import torch
    from make_demo_fixture import _ids
    from make_fusion_fixtures import fusion_config
    from nemo.collections.asr.models import ASRModel
    from omegaconf import open_dict

    torch.set_num_threads(1)
    asr = ASRModel.restore_from(str(model), map_location="cpu").eval()
    saved = {"rnnt": copy.deepcopy(asr.cfg.decoding),
             "ctc": copy.deepcopy(asr.cfg.aux_ctc.decoding)}  # fmt: skip
    out = {}
    for head, decoder in HEADS.items():
        for name, setting in (("plain", {}), ("boost", {"boost": BOOST_ALPHA})):
            cfg = fusion_config(saved[decoder], setting, Path("unused.arpa"), RARE)
            with open_dict(cfg):
                cfg.strategy = "greedy_batch"
            asr.change_decoding_strategy(cfg, decoder_type=decoder, verbose=False)
            asr.eval()
            hyps = asr.transcribe(paths, batch_size=BATCH, verbose=False)
            asr.eval()  # transcribe leaves the modules in training mode
            out[head, name] = {"texts": [h.text for h in hyps],
                               "ids": [_ids(h, asr, decoder) for h in hyps]}  # fmt: skip
    return out


def ours(model_file: Path, paths: list[str]) -> dict[tuple[str, str], dict]:
    import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

    import nemo_mlx_parakeet as parakeet

    out = {}
    for head in HEADS:
        model = parakeet.load(str(model_file), dtype="float32", head=head,
                              cache_dir=CACHE / "models", verbose=False)  # fmt: skip
        for name, boost in (("plain", ()), ("boost", RARE)):
            result = model.transcribe(paths, batch_size=BATCH, boost=list(boost))
            out[head, name] = {"texts": [t.text for t in result],
                               "ids": [[tok.id for tok in t.tokens] for t in result]}  # fmt: skip
    return out


def rare_counts(refs: list[str], hyps: list[str], words: list[str] = RARE) -> tuple[int, int, int]:
    """Occurrences, hits and false alarms of `words` on jiwer's word alignment."""
    import jiwer

    rare = set(words)
    gt = hits = false = 0
    aligned = jiwer.process_words(refs, hyps)
    for ref, hyp, chunks in zip(aligned.references, aligned.hypotheses, aligned.alignments,
                                strict=True):  # fmt: skip
        gt += sum(w in rare for w in ref)
        for c in chunks:
            r, h = ref[c.ref_start_idx : c.ref_end_idx], hyp[c.hyp_start_idx : c.hyp_end_idx]
            if c.type == "equal":
                hits += sum(w in rare for w in r)
            elif c.type in ("substitute", "insert"):
                false += sum(w in rare for w in h)
    return gt, hits, false


def per_word(rows: list[dict], results: dict) -> str:
    """Each rare word's occurrences and hits, plain -> boosted, per head."""
    refs = [r["text"] for r in rows]
    out = []
    for head in HEADS:
        parts = []
        for word in RARE:
            keep = [i for i, r in enumerate(refs) if word in r.split()]
            counts = [
                rare_counts(
                    [refs[i] for i in keep], [results[head, n]["texts"][i] for i in keep], [word]
                )
                for n in ("plain", "boost")
            ]
            parts.append(f"{word} {counts[0][1]}->{counts[1][1]}/{counts[0][0]}")
        out.append(f"{head.upper()} hits plain->boosted/occurrences: " + ", ".join(parts))
    return "\n".join(out)


def table(rows: list[dict], results: dict) -> str:
    import jiwer

    refs = [r["text"] for r in rows]
    lines = ["| head | decoding | rare-word error rate | rare words recognised | false alarms "
             "| WER |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for head in HEADS:
        for name in ("plain", "boost"):
            hyps = results[head, name]["texts"]
            gt, hits, false = rare_counts(refs, hyps)
            label = "plain" if name == "plain" else f"boosted (alpha {BOOST_ALPHA:g})"
            lines.append(f"| {head.upper()} | {label} | {(gt - hits + false) / gt:.1%} | "
                         f"{hits}/{gt} | {false} | {jiwer.wer(refs, hyps):.2%} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="train the variant first")
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--model", type=Path, default=MODEL, help="default: the variant")
    args = parser.parse_args()
    if args.train:
        train()
    if not args.model.exists():
        sys.exit(f"no {args.model}: run with --train first")
    started = time.time()
    rows = heldout(args.workers)
    paths = [r["path"] for r in rows]
    words = sum(len(r["text"].split()) for r in rows)
    print(f"{len(rows)} held-out clips, {words} words; rare words {RARE}", flush=True)
    theirs = nemo(args.model, paths)
    mine = ours(args.model, paths)
    for key, result in theirs.items():
        for i, row in enumerate(rows):
            assert mine[key]["ids"][i] == result["ids"][i], (key, row["path"])
            assert mine[key]["texts"][i] == result["texts"][i], (key, row["path"])
    print("ours equal NeMo's: token ids and texts, every clip, both heads, plain and boosted")
    changed = {h: sum(a != b for a, b in zip(theirs[h, "plain"]["texts"],
                                             theirs[h, "boost"]["texts"], strict=True))
               for h in HEADS}  # fmt: skip
    print(f"texts boosting changed: {changed}")
    print(table(rows, theirs))
    print(per_word(rows, theirs))
    if args.model != MODEL or not (MODEL_DIR / "result.json").exists():
        return
    result = json.loads((MODEL_DIR / "result.json").read_text())
    print(
        f"\nmodel: {result['train_clips']} clips ({result['train_hours']} h), "
        f"{result['train_minutes']} min, best val WER {result['best_val_wer']:.4f}, "
        f"held-out WER {result['heldout_wer']:.4f}; run {time.time() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
