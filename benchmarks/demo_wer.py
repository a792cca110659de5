"""The demo model's WER on its 300 held-out clips: NeMo's `transcribe` and this project's
`parakeet.load("demo")`, both heads, scored by one scorer (jiwer) on the same references.

    python benchmarks/demo_wer.py                   # rebuild the clips once, then both systems
    python benchmarks/demo_wer.py --systems ours    # without NeMo (the clips once made)
    python benchmarks/demo_wer.py --manifest        # both through the split's NeMo manifest

Needs this workspace (jiwer is in the dev group), and the `reference` group (NeMo, torch; its
scipy resamples the synthesised speech) and espeak-ng in the same environment; once the clips
are cached, `--systems ours` needs neither.

The clips: the held-out test split of `tools/train_demo_model.py`, rebuilt by its own code
(`make_split`, `tools/demo_corpus.py`'s sentences and voices, its `synthesise`) with its
seed, count and reserved example sentence, into its git-ignored cache
(`.benchmarks-cache/demo-model/test/`, reused while the specification is unchanged). Only 40
of them are committed (`tests/fixtures/demo/`); before anything is transcribed, the rebuilt
split is checked against them: the first 40 clips must have their names, sentences and
voices, and their samples are compared (equal when espeak-ng is the same version, 1.51).

Each system runs in its own worker process (the helpers in `_common.py`), one after the
other: NeMo restores the bundled `.nemo` and calls `transcribe` on the WAV paths, TDT head
(as saved) then CTC head (`change_decoding_strategy(decoder_type="ctc")`); ours loads
`parakeet.load("demo", dtype="float32", head=...)` and calls `transcribe` on the same paths,
at the same batch size. Reported per head: WER (word edits over reference words, the whole
set at once), substitutions, deletions, insertions, the wall time of `transcribe`, and the
clips whose text or token ids differ from NeMo's (ids as `tests/reference/make_demo_fixture.py`
takes them from NeMo's hypotheses). The times are for orientation, not a speed comparison
(`benchmarks/e2e.py` is that). torch runs one thread (`--torch-threads`): on this project's
2-core machine with other work running, two OpenMP threads made NeMo's `transcribe` 10x
slower (218 s against 22 s), as `tools/train_demo_model.py` found for training.

`--manifest`: the corpus job instead of a list of paths. NeMo's `transcribe` gets the
split's NeMo manifest (the file `make_split` writes, absolute paths), ours runs the same
manifest through `speech_corpus.transcribe_manifest` with `parakeet.transcriber` (what
`parakeet --manifest ... --eval` runs), and both are scored by `speech_corpus.evaluate`
(jiwer, no normaliser; `--normalizer` picks another), which prints WER, CER and RTFx per
system and head. Token ids are not compared in this mode (an output manifest holds text).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import CACHE, failure, receive, result_channel, send, start_worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import train_demo_model as training  # noqa: E402  (tools/ is not a package)

MODEL = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "demo.nemo"
FIXTURE = ROOT / "tests" / "fixtures" / "demo"
HELDOUT = json.loads((FIXTURE / "heldout.json").read_text())
CLIPS = HELDOUT["training"]["heldout_clips"]  # 300: the count the committed model was tested on
SYSTEMS = ("nemo", "ours")
HEADS = ("tdt", "ctc")


# --------------------------------------------------------------------------- the clips


def heldout_set(workers: int) -> list[dict]:
    """The held-out split as train_demo_model.py makes it (cached), checked against the
    committed subset; its manifest rows (audio_filepath, duration, text, voice)."""
    reserved = frozenset({training.EXAMPLE.text})  # as its main() reserves the example
    manifest = training.make_split("test", CLIPS, workers, reserved)
    rows = training.read_manifest(manifest)
    assert len(rows) == CLIPS, (len(rows), CLIPS)
    check_committed(rows)
    return rows


def check_committed(rows: list[dict]) -> None:
    """The committed clips must be the split's first ones: same name, sentence and voice.
    Their samples are compared too (a different espeak-ng may pronounce differently)."""
    import soundfile

    committed = HELDOUT["clips"]
    same_audio = 0
    for row, clip in zip(rows, committed, strict=False):
        name = Path(row["audio_filepath"]).stem
        mine = (f"clips/{name}.flac", row["text"], row["voice"])
        theirs = (clip["file"], clip["text"], clip["voice"])
        if mine != theirs:
            sys.exit(f"the rebuilt split differs from the committed clips: {mine} != {theirs}")
        ours, _ = soundfile.read(row["audio_filepath"], dtype="int16")
        ref, _ = soundfile.read(FIXTURE / clip["file"], dtype="int16")
        same_audio += ours.shape == ref.shape and bool(np.array_equal(ours, ref))
    print(f"check: the first {len(committed)} clips are the committed ones (name, sentence, "
          f"voice); samples identical: {same_audio}/{len(committed)}", flush=True)  # fmt: skip
    if same_audio != len(committed):
        print("warning: the synthesised audio differs from the committed clips' (another "
              "espeak-ng?): these are not the clips the figures in the READMEs come from",
              flush=True)  # fmt: skip


# --------------------------------------------------------------------------- the systems


def nemo(paths: list[str] | str, args: argparse.Namespace):
    import torch
    from nemo.collections.asr.models import ASRModel

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from make_demo_fixture import _ids  # the committed fixture's token ids, the same way

    torch.set_num_threads(args.torch_threads)
    model = ASRModel.restore_from(str(MODEL), map_location=torch.device("cpu")).eval()
    for head, decoder in (("tdt", "rnnt"), ("ctc", "ctc")):
        model.change_decoding_strategy(decoder_type=decoder, verbose=False)
        model.eval()
        start = time.perf_counter()
        hyps = model.transcribe(paths, batch_size=args.batch_size, verbose=False)  # or a manifest
        seconds = time.perf_counter() - start
        yield head, [h.text for h in hyps], [_ids(h, model, decoder) for h in hyps], seconds


def ours(paths: list[str] | str, args: argparse.Namespace):
    import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

    import nemo_mlx_parakeet as parakeet

    if isinstance(paths, str):  # a manifest: the corpus job
        yield from ours_manifest(paths, args)
        return
    for head in HEADS:
        model = parakeet.load("demo", dtype="float32", head=head, cache_dir=CACHE / "models",
                              verbose=False)  # fmt: skip
        start = time.perf_counter()
        out = model.transcribe(paths, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        yield head, [t.text for t in out], [[tok.id for tok in t.tokens] for t in out], seconds


def ours_manifest(manifest: str, args: argparse.Namespace):
    """`parakeet --manifest` as a Python call, per head, into a scratch output manifest."""
    import tempfile
    from functools import partial

    import nemo_mlx_parakeet as parakeet
    from speech_corpus import transcribe_manifest

    for head in HEADS:
        factory = partial(parakeet.transcriber, "demo", dtype="float32", head=head,
                          cache_dir=CACHE / "models")  # fmt: skip
        factory()  # loaded once before the clock starts (the job loads it again: cached)
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            result = transcribe_manifest(manifest, Path(scratch) / "out.jsonl", factory,
                                         batch_size=args.batch_size)  # fmt: skip
            seconds = time.perf_counter() - start
        yield head, [row["pred_text"] for row in result.report.rows], None, seconds


def serve(args: argparse.Namespace) -> None:
    """Worker: one system's transcripts of the paths read from stdin, one message per head."""
    channel = result_channel()
    paths = json.loads(sys.stdin.readline())  # a list of paths, or a manifest's path
    for head, texts, ids, seconds in {"nemo": nemo, "ours": ours}[args.worker](paths, args):
        send(channel, {"head": head, "texts": texts, "ids": ids, "seconds": seconds})


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--batch-size", type=int, default=16,
                        help="both systems' (16: what train_demo_model.py's evaluate uses)")  # fmt: skip
    parser.add_argument("--torch-threads", type=int, default=1, help="NeMo's (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--manifest", action="store_true",
                        help="both systems on the split's NeMo manifest (the corpus job), scored "
                             "by speech_corpus.evaluate")  # fmt: skip
    parser.add_argument("--normalizer", default="none", help="--manifest: the scores' normaliser")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(args)
        return
    import jiwer

    started = time.time()
    rows = heldout_set(args.workers)
    paths = [row["audio_filepath"] for row in rows]
    source = str(training.WORK / "test.json") if args.manifest else paths
    refs = [row["text"] for row in rows]
    minutes = sum(row["duration"] for row in rows) / 60
    sha = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    print(f"demo model {MODEL.name} (sha256 {sha[:12]}), {len(rows)} held-out clips "
          f"({minutes:.1f} min), float32, CPU, batch {args.batch_size}, torch threads "
          f"{args.torch_threads}", flush=True)  # fmt: skip
    results: dict[tuple[str, str], dict] = {}
    for system in args.systems:
        proc = start_worker(__file__, "--worker", system, "--batch-size", str(args.batch_size),
                            "--torch-threads", str(args.torch_threads))  # fmt: skip
        proc.stdin.write(json.dumps(source) + "\n")
        proc.stdin.close()
        while (message := receive(proc)) is not None:
            results[system, message["head"]] = message
        if proc.wait() != 0 or not any(s == system for s, _ in results):
            print(f"{system}: failed: {failure(proc)}", flush=True)
    if args.manifest:
        report_manifest(rows, results, args)
        return
    print(f"\n{'head':4s} {'system':6s} {'WER':>7s} {'subst':>6s} {'del':>5s} {'ins':>5s} "
          f"{'time s':>7s}  clips differing from NeMo's (text / ids)")  # fmt: skip
    for head in HEADS:
        nemo_result = results.get(("nemo", head))
        for system in args.systems:
            result = results.get((system, head))
            if result is None:
                print(f"{head:4s} {system:6s} failed")
                continue
            score = jiwer.process_words(refs, result["texts"])
            differ = "-"
            if system != "nemo" and nemo_result is not None:
                texts = sum(
                    a != b for a, b in zip(result["texts"], nemo_result["texts"], strict=True)
                )
                ids = sum(a != b for a, b in zip(result["ids"], nemo_result["ids"], strict=True))
                differ = f"{texts} / {ids} of {len(rows)}"
            print(f"{head:4s} {system:6s} {score.wer:7.2%} {score.substitutions:6d} "
                  f"{score.deletions:5d} {score.insertions:5d} {result['seconds']:7.1f}  {differ}")  # fmt: skip
    words = sum(len(r.split()) for r in refs)
    print(f"\n{words} reference words; total run time {time.time() - started:.0f} s")


def report_manifest(rows: list[dict], results: dict[tuple[str, str], dict], args) -> None:
    """--manifest: speech_corpus's table per system and head (RTFx: the split's audio over
    the job's wall time), and how many clips' texts differ from NeMo's."""
    from speech_corpus import evaluate

    audio = sum(row["duration"] for row in rows)
    for head in HEADS:
        for system in args.systems:
            result = results.get((system, head))
            if result is None:
                print(f"{head} {system}: failed")
                continue
            scored = [{"text": row["text"], "pred_text": text}
                      for row, text in zip(rows, result["texts"], strict=True)]  # fmt: skip
            score = evaluate(scored, args.normalizer, rtfx=audio / result["seconds"])
            nemo_result = results.get(("nemo", head))
            differ = ""
            if system != "nemo" and nemo_result is not None:
                count = sum(
                    a != b for a, b in zip(result["texts"], nemo_result["texts"], strict=True)
                )
                differ = f"; texts differing from NeMo's: {count} of {len(rows)}"
            print(f"\n{head} {system}{differ}\n{score.table()}", end="")


if __name__ == "__main__":
    main()
