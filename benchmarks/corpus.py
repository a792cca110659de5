"""A manifest job's throughput: rows/s and RTFx of `parakeet --manifest` in one process, on
a local Ray with 1, 2 and 4 model replicas, and NeMo's batched `transcribe` on the same
manifest (as `transcribe_speech.py` runs it: presorted longest first), with the demo model.

    python benchmarks/corpus.py                          # 200 rows; single, ray 1 2 4, nemo
    python benchmarks/corpus.py --rows 40 --replicas 1 2 --systems single ray

The manifest: the first `--rows` rows of the demo model's held-out split (demo_wer.py's
clips, espeak-ng speech, 2-5 s each; rebuilt and cached once). Each system runs in a fresh
worker process, one after the other; a Ray run starts its own local Ray with as many CPUs
as replicas (`ray.init(num_cpus=N)`, one CPU each) and its time includes starting the
replicas (each loads the model once), as a user's job would. NeMo: torch with
`--torch-threads` (default 1; see demo_wer.py for why), the demo `.nemo`, TDT head.

On a machine of C cores the curve flattens at C replicas (each replica's MLX runs its
own threads; past the cores they only share them). For more machines, start a cluster
(`ray start --head` on one, `ray start --address HEAD:6379` on the others, each with the
workspace installed and the audio at the manifest's paths) and pass `--ray HEAD:6379`.
Needs the `reference` group for NeMo and the apps' `ray` extra for Ray.

A smoke run on the 2-core project machine under other load (`--rows 16 --replicas 1 2`,
0.7 min of audio): single 0.4 s (44 rows/s, RTFx 116), Ray 1 replica 21.6 s, 2 replicas
29.0 s, NeMo 0.4 s (39 rows/s, RTFx 102). With the 6.8 MB demo model a replica's start
(a Ray worker process importing MLX and loading the model) costs ~20 s, far more than the
transcription: Ray pays off where the corpus, or the model, is large. The full curve
(200 rows, 1/2/4 replicas) was not run here: too long for the shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import CACHE, failure, receive, result_channel, send, start_worker
from demo_wer import MODEL, heldout_set

SYSTEMS = ("single", "ray", "nemo")


def manifest_of(rows: int, workers: int) -> tuple[Path, float]:
    """The first `rows` held-out clips as a NeMo manifest (cached next to the clips), and
    their seconds of audio."""
    split = heldout_set(workers)[:rows]
    path = CACHE / "corpus" / f"heldout-{rows}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in split))
    return path, sum(row["duration"] for row in split)


def run_ours(manifest: str, replicas: int | None, batch_size: int) -> dict:
    from functools import partial

    import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

    import nemo_mlx_parakeet as parakeet
    from speech_corpus import RayOptions, transcribe_manifest

    factory = partial(parakeet.transcriber, "demo", dtype="float32", cache_dir=CACHE / "models")
    ray = None
    if replicas is not None:
        import ray as ray_module

        ray_module.init(num_cpus=replicas, logging_level="ERROR", log_to_driver=False)
        ray = RayOptions(actors=replicas)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        result = transcribe_manifest(manifest, Path(scratch) / "out.jsonl", factory,
                                     batch_size=batch_size, ray=ray)  # fmt: skip
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(result.report.rows), "failed": result.report.failed}


def run_nemo(manifest: str, batch_size: int, threads: int) -> dict:
    import torch
    from nemo.collections.asr.models import ASRModel

    torch.set_num_threads(threads)
    model = ASRModel.restore_from(str(MODEL), map_location=torch.device("cpu")).eval()
    rows = [json.loads(line) for line in Path(manifest).read_text().splitlines()]
    with tempfile.TemporaryDirectory() as scratch:
        ordered = Path(scratch) / "sorted.jsonl"  # transcribe_speech.py's presort
        ordered.write_text("".join(json.dumps(r) + "\n"
                                   for r in sorted(rows, key=lambda r: -r["duration"])))  # fmt: skip
        start = time.perf_counter()
        hyps = model.transcribe(str(ordered), batch_size=batch_size, verbose=False)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(hyps), "failed": 0}


def serve(args: argparse.Namespace) -> None:
    """Worker: one system's run of the manifest read from stdin."""
    channel = result_channel()
    manifest = json.loads(sys.stdin.readline())
    if args.worker == "nemo":
        send(channel, run_nemo(manifest, args.batch_size, args.torch_threads))
    else:
        replicas = None if args.worker == "single" else int(args.worker.split("-")[1])
        send(channel, run_ours(manifest, replicas, args.batch_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="manifest rows (at most 300)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4],
                        help="Ray runs: model replicas (one CPU each)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(args)
        return
    manifest, audio = manifest_of(args.rows, args.workers)
    runs = []
    for system in args.systems:
        runs += [f"ray-{n}" for n in args.replicas] if system == "ray" else [system]
    print(f"{args.rows} rows, {audio / 60:.1f} min of audio, batch {args.batch_size}", flush=True)
    print(f"{'system':8s} {'wall s':>7s} {'rows/s':>7s} {'RTFx':>6s}", flush=True)
    for run in runs:
        proc = start_worker(__file__, "--worker", run, "--batch-size", str(args.batch_size),
                            "--torch-threads", str(args.torch_threads))  # fmt: skip
        proc.stdin.write(json.dumps(str(manifest)) + "\n")
        proc.stdin.close()
        result = receive(proc)
        proc.wait()
        if result is None:
            print(f"{run:8s} failed: {failure(proc)}", flush=True)
            continue
        seconds = result["seconds"]
        print(f"{run:8s} {seconds:7.1f} {result['rows'] / seconds:7.2f} {audio / seconds:6.1f}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
