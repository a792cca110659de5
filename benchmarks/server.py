"""The server under load: 1, 4, 16 and 64 concurrent clients sending the 64 benchmark clips,
with dynamic batching and one request at a time, against the same clips run one by one
through the CLI and NeMo transcribing them in its best batch, side by side in one run.

    python benchmarks/server.py --model demo
    python benchmarks/server.py --model 0.6b          # parakeet-tdt-0.6b geometry (random weights,
                                                      # ~6 tokens per second as speech has)
    python benchmarks/server.py --model canary        # canary-180m-flash's geometry (random
                                                      # weights, 55 tokens a clip: canary.py's)
    python benchmarks/server.py --warm-up-all         # each level once untimed first (a GPU
                                                      # compiles kernels per shape)

Clips: 64 of 2-20 s cut from cached espeak-ng speech (`_common.clip_paths`), sent as WAV
files. Each concurrency level: that many client threads take the clips from one queue, each
posting a clip and waiting for its answer (OpenAI's multipart request, `response_format=json`),
so that every clip is sent once. Figures: requests per second (64 over the wall time from the
first request to the last answer), each request's latency (p50, p95) and the server process's
peak resident memory, sampled every 20 ms. `one at a time` is the same server started with
`--max-batch 1`. `CLI one by one` runs `parakeet CLIP --model M` once per clip (model load
included, as a script that calls the command per file does). `NeMo best batch` is NeMo's
`transcribe` over all 64 files at batch 1, 8, 16, 32 and 64 in a worker process; the fastest
counts. Texts of every system are compared with the one-at-a-time server's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

from _common import (
    CACHE,
    CLIPS,
    PeakRSS,
    build_tdt,
    clip_paths,
    failure,
    receive,
    result_channel,
    send,
    start_worker,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO_NEMO = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "demo.nemo"
BIG_NEMO = CACHE / "tdt-0.6b-speechrate.nemo"  # tokens at the rate of speech (`build_tdt`)
NEMO_BATCHES = (1, 8, 16, 32, 64)


@dataclass
class Row:
    system: str
    clients: int | str
    seconds: float
    latencies: list[float]
    peak_rss: int
    agree: str = "-"

    @property
    def rps(self) -> float:
        return (len(self.latencies) or CLIPS) / self.seconds


def server_args(model: str) -> tuple[list[str], str, Path]:
    """(server --model args, served name, .nemo for NeMo)."""
    if model == "demo":
        return ["--model", "demo"], "demo", DEMO_NEMO
    if model == "canary":
        import canary

        if not canary.MODEL.exists():
            print(f"building {canary.MODEL} with NeMo (once) ...", file=sys.stderr)
            sys.path.insert(0, str(canary.REFERENCE))
            canary.build(canary.MODEL)
        return (
            ["--model", f"bench={canary.MODEL}", "--cache-dir", str(CACHE / "models")],
            "bench",
            canary.MODEL,
        )
    if not BIG_NEMO.exists():
        print(f"building {BIG_NEMO} with NeMo (once) ...", file=sys.stderr)
        build_tdt(BIG_NEMO, speechlike=True, speech_rate=True)
    return ["--model", f"bench={BIG_NEMO}", "--cache-dir", str(CACHE / "models")], "bench", BIG_NEMO


class Server:
    def __init__(self, args: list[str], port: int) -> None:
        import httpx

        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nemo_mlx_serve.cli", *args, "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.http = httpx.Client(timeout=3600, limits=httpx.Limits(max_connections=128))
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server failed: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if self.http.get(f"{self.url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise SystemExit("server did not start")

    def transcribe(self, path: Path, name: str) -> str:
        with path.open("rb") as handle:
            response = self.http.post(
                f"{self.url}/v1/audio/transcriptions",
                files={"file": (path.name, handle, "audio/wav")}, data={"model": name},
            )  # fmt: skip
        response.raise_for_status()
        return response.json()["text"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)
        self.http.close()


def load(
    server: Server, name: str, clips: list[Path], clients: int
) -> tuple[float, list[float], dict]:
    """Wall seconds, per-request latencies and texts for `clients` threads over the clips."""
    queue: Queue[Path] = Queue()
    for clip in clips:
        queue.put(clip)
    latencies: list[float] = []
    texts: dict[str, str] = {}
    lock = threading.Lock()

    def client() -> None:
        while True:
            try:
                clip = queue.get_nowait()
            except Empty:
                return
            start = time.perf_counter()
            text = server.transcribe(clip, name)
            with lock:
                latencies.append(time.perf_counter() - start)
                texts[clip.name] = text

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - start, latencies, texts


def run_server(label: str, args: list[str], name: str, clips: list[Path], levels: list[int],
               port: int, reference: dict | None, warm_all: bool = False) -> tuple[list[Row], dict]:  # fmt: skip
    server = Server(args, port)
    try:
        for clip in clips[:2]:  # compile the steps once before timing
            server.transcribe(clip, name)
        rows, texts = [], {}
        for clients in levels:
            if warm_all:  # the level once untimed: a GPU compiles kernels per shape (round sizes)
                load(server, name, clips, clients)
            with PeakRSS(server.process.pid, interval=0.02) as memory:
                seconds, latencies, texts = load(server, name, clips, clients)
            agree = agreement(texts, reference) if reference is not None else "-"
            rows.append(Row(label, clients, seconds, latencies, memory.peak, agree))
            print(
                f"  {label} x{clients}: {seconds:.1f} s, {len(clips) / seconds:.2f} req/s",
                file=sys.stderr,
            )
        return rows, texts
    finally:
        server.stop()


def agreement(texts: dict, reference: dict) -> str:
    same = sum(texts.get(k) == v for k, v in reference.items())
    return "identical" if same == len(reference) else f"{same}/{len(reference)} same"


def run_cli(model_args: list[str], clips: list[Path], reference: dict) -> Row:
    import resource

    script = Path(sys.executable).parent / "parakeet"
    extra = [a for a in model_args if a != "--model"]
    model = extra[0].split("=", 1)[-1]
    rest = extra[1:]
    latencies, texts = [], {}
    start = time.perf_counter()
    for clip in clips:
        began = time.perf_counter()
        out = subprocess.run([str(script), str(clip), "--model", model, *rest, "--quiet",
                              "--output-format", "json"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        latencies.append(time.perf_counter() - began)
        texts[clip.name] = json.loads(out.stdout)["text"]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"  CLI one by one: {seconds:.1f} s", file=sys.stderr)
    return Row("CLI one by one", 1, seconds, latencies, peak, agreement(texts, reference))


def run_nemo(nemo_file: Path, clips: list[Path], reference: dict) -> Row:
    worker = start_worker(__file__, "--worker", str(nemo_file), *map(str, clips))
    best = None
    while (message := receive(worker)) is not None:
        print(f"  NeMo batch {message['batch']}: {message['seconds']:.1f} s", file=sys.stderr)
        if best is None or message["seconds"] < best["seconds"]:
            best = message
    if best is None:
        raise SystemExit(f"NeMo worker failed: {failure(worker)}")
    texts = dict(zip([c.name for c in clips], best["texts"], strict=True))
    row = Row(f"NeMo best batch ({best['batch']})", "-", best["seconds"], [], best["peak"],
              agreement(texts, reference))  # fmt: skip
    return row


def nemo_worker(nemo_file: str, clips: list[str]) -> None:
    channel = result_channel()
    import torch
    from nemo.collections.asr.models import ASRModel

    torch.set_num_threads(os.cpu_count() or 1)
    model = ASRModel.restore_from(nemo_file, map_location="cpu").eval()
    if "validation_ds" not in model.cfg:  # build_tdt's models have no data sections, which
        from omegaconf import open_dict  # `transcribe` reads one flag of

        with open_dict(model.cfg):
            model.cfg.validation_ds = {"use_start_end_token": False}
    model.transcribe(clips[:2], batch_size=2, verbose=False)  # warm-up
    for batch in NEMO_BATCHES:
        with PeakRSS() as memory, torch.inference_mode():
            start = time.perf_counter()
            hyps = model.transcribe(clips, batch_size=batch, verbose=False)
            seconds = time.perf_counter() - start
        texts = [h.text if hasattr(h, "text") else str(h) for h in hyps]
        send(channel, {"batch": batch, "seconds": seconds, "texts": texts, "peak": memory.peak})


def report(rows: list[Row], model: str, audio_seconds: float) -> None:
    import mlx.core as mx  # the server's device and default dtype are MLX's default device's

    where = "bfloat16, gpu" if mx.default_device() == mx.gpu else "float32, cpu"
    print(f"\nserver, {model} model, 64 clips ({audio_seconds:.0f} s of audio), {where}; "
          f"{platform.machine()}, {os.cpu_count()} cores")  # fmt: skip
    one = {r.clients: r.rps for r in rows if r.system == "one at a time"}
    print(f"{'system':24s} {'clients':>7s} {'req/s':>7s} {'vs 1-at-a-time':>14s} {'p50 s':>7s} "
          f"{'p95 s':>7s} {'peak RSS GiB':>12s}  texts vs one at a time")  # fmt: skip
    for r in rows:
        ratio = (
            f"{r.rps / one[r.clients]:.2f}x"
            if r.clients in one and r.system != "one at a time"
            else "-"
        )
        p50 = f"{statistics.median(r.latencies):.2f}" if r.latencies else "-"
        p95 = f"{quantile(r.latencies, 0.95):.2f}" if r.latencies else "-"
        print(f"{r.system:24s} {r.clients!s:>7s} {r.rps:7.2f} {ratio:>14s} {p50:>7s} {p95:>7s} "
              f"{r.peak_rss / 2**30:12.2f}  {r.agree}")  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        nemo_worker(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["demo", "0.6b", "canary"], default="demo")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--systems", nargs="+", default=["batched", "single", "cli", "nemo"],
                        choices=["batched", "single", "cli", "nemo"])  # fmt: skip
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--warm-up-all", action="store_true",
                        help="each level run once untimed first (a GPU compiles kernels per shape)")  # fmt: skip
    args = parser.parse_args()
    model_args, name, nemo_file = server_args(args.model)
    clips = clip_paths()
    import soundfile

    audio_seconds = sum(soundfile.info(str(c)).duration for c in clips)
    rows: list[Row] = []
    reference: dict | None = None
    if "single" in args.systems:
        single, reference = run_server("one at a time", [*model_args, "--max-batch", "1"], name,
                                       clips, args.clients, args.port, None, args.warm_up_all)  # fmt: skip
        rows += single
    if "batched" in args.systems:
        rows += run_server("dynamic batching", model_args, name, clips, args.clients, args.port,
                           reference, args.warm_up_all)[0]  # fmt: skip
    if reference is not None and "cli" in args.systems:
        rows.append(run_cli(model_args, clips, reference))
    if reference is not None and "nemo" in args.systems:
        rows.append(run_nemo(nemo_file, clips, reference))
    report(rows, args.model, audio_seconds)


if __name__ == "__main__":
    main()
