"""Helpers shared by the benchmark scripts: cached speech, the 0.6b-geometry model, memory,
worker processes, interleaved timing.

The scripts run as `python benchmarks/<name>.py`, so this module is importable as `_common`.
Nothing here imports torch, NeMo or MLX at import time: each script (and each worker process
of `e2e.py` and `stages.py`) imports only what it runs.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

CACHE = Path(__file__).resolve().parents[1] / ".benchmarks-cache"
SAMPLE_RATE = 16000

# Common English words and espeak-ng voices for the synthetic speech.
WORDS = """the a of to and in that is was he for it with as his on be at by had are but from or
have an they which one you were all we her she there would their will when who him been has more
if no out do so can what up said about other into than its time only could new them man some these
then two first may any like now my such make over our even most me state after also made many did
must before back see through way where get much go well your know should down work year because
come people just say each those take day good how""".split()  # noqa: SIM905
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en-gb+m3"]


def interleaved(
    runs: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds and last output of each run, after a warm-up each. The runs take
    turns, who goes first alternating, so that the host's drift over the minutes this takes
    falls on every system alike (this VM's speed moves by tens of percent within an hour)."""
    outputs = {name: run() for name, run in runs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        names = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in names:
            start = time.perf_counter()
            outputs[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def token_agreement(ids: list[list[int]], reference: list[list[int]]) -> float:
    """The share of the reference's tokens that an alignment (difflib) matches in `ids`."""
    matched = sum(
        sum(block.size for block in difflib.SequenceMatcher(None, a, r, autojunk=False).get_matching_blocks())
        for a, r in zip(ids, reference, strict=True)
    )  # fmt: skip
    return matched / max(1, sum(len(r) for r in reference))


def agreement(ids: list[list[int]], reference: list[list[int]]) -> str:
    """'identical', or how many inputs match and the share of matching tokens."""
    if ids == reference:
        return "identical"
    same = sum(a == b for a, b in zip(ids, reference, strict=True))
    return f"{same}/{len(reference)} inputs, {token_agreement(ids, reference):.1%} tokens"


def read_wav(path: Path) -> np.ndarray:
    """16-bit mono WAV samples as int16."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def speech(minutes: float) -> Path:
    """A 16 kHz mono WAV of about `minutes` of espeak-ng speech (cached)."""
    path = CACHE / f"speech-{minutes:g}min.wav"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    target = int(minutes * 60 * SAMPLE_RATE)
    parts, total = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        while total < target:
            text = ". ".join(
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) for _ in range(20)
            )
            raw = Path(tmp) / "part.wav"
            voice, speed = rng.choice(VOICES), rng.randint(140, 190)
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True
            )
            resampled = Path(tmp) / "part16.wav"
            subprocess.run(["sox", str(raw), "-r", "16000", "-b", "16", str(resampled)], check=True)
            parts.append(read_wav(resampled))
            total += len(parts[-1])
    write_wav(path, np.concatenate(parts)[:target])
    return path


CLIPS = 64  # the clips workload: how many


def clip_paths() -> list[Path]:
    """64 clips of 2-20 s (uniform, seeded) cut from the 10 min of speech (cached)."""
    folder = CACHE / "clips"
    paths = [folder / f"clip-{k:02d}.wav" for k in range(CLIPS)]
    if all(p.exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    source = read_wav(speech(10))
    rng = random.Random(0)
    for path in paths:
        length = int(rng.uniform(2.0, 20.0) * SAMPLE_RATE)
        start = rng.randrange(0, len(source) - length)
        write_wav(path, source[start : start + length])
    return paths


class PeakRSS:
    """Peak resident memory of this process (or of process `pid`) while inside the block,
    sampled every `interval` seconds (2 ms)."""

    def __init__(self, pid: int | str = "self", interval: float = 0.002) -> None:
        self.pid, self.interval = pid, interval

    def __enter__(self) -> PeakRSS:
        self._stop = threading.Event()
        self.base = self.peak = rss(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))

    @property
    def extra(self) -> int:
        """Growth above the level at entry."""
        return self.peak - self.base


def rss(pid: int | str = "self") -> int:
    """Resident set size of this process (or of process `pid`) in bytes (Linux)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# Worker processes: one system per process (its own peak memory; MLX and torch never share one,
# where on CUDA they cannot both load cuDNN). The parent starts `python script --worker ...`
# with this interpreter; the worker sends JSON lines on a channel of its own.


def start_worker(
    script: str | Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`script *args` in a new process of this interpreter, its stdin and stdout piped to us."""
    command = [sys.executable, str(script), *args]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def result_channel() -> TextIO:
    """In a worker: a stream to the parent for results only; what libraries print to stdout
    goes to stderr from now on."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return channel


def send(channel: TextIO, message: dict) -> None:
    print(json.dumps(message), file=channel, flush=True)


def receive(proc: subprocess.Popen) -> dict | None:
    """The worker's next message; None once it has stopped (`failure` says how)."""
    line = proc.stdout.readline()
    return json.loads(line) if line else None


def failure(proc: subprocess.Popen) -> str:
    """What happened to a worker that stopped answering."""
    code = proc.wait()
    if code == -9:
        return "killed (SIGKILL: out of memory?)"
    return f"exited with {code}" if code >= 0 else f"killed by signal {-code}"


# nvidia/parakeet-tdt-0.6b-v2's published model_config.yaml (its source in the file's header):
# benchmark models are built from it, so that they have the real checkpoint's structure
# (no xscaling, no biases, two LSTM layers, durations 0-4) and only their weights are random.
PUBLISHED_V2 = (
    Path(__file__).resolve().parents[1] / "tests/reference/configs/parakeet-tdt-0.6b-v2.yaml"
)
_MODEL_SECTIONS = ("sample_rate", "preprocessor", "encoder", "model_defaults", "decoder", "joint",
                   "decoding", "loss")  # fmt: skip


def published_v2() -> dict:
    """parakeet-tdt-0.6b-v2's config sections a model is built from (no data, no optimiser)."""
    import yaml

    config = yaml.safe_load(PUBLISHED_V2.read_text())
    return {key: config[key] for key in _MODEL_SECTIONS}


def tdt_config(tokenizer_dir: str, layers: int = 24) -> dict:
    """nvidia/parakeet-tdt-0.6b-v2's published config with `layers` encoder layers and a
    tokenizer of its size (1024 pieces) from `tokenizer_dir`."""
    config = published_v2()
    config["encoder"]["n_layers"] = layers
    config["tokenizer"] = {"dir": tokenizer_dir, "type": "bpe"}
    config["optim"] = None
    return config


def build_tdt(
    path: Path, *, speechlike: bool = False, speech_rate: bool = False, layers: int = 24
) -> None:
    """A random-weight TDT model of parakeet-tdt-0.6b geometry, built and saved by NeMo.

    `speechlike` scales the joint's output layer and biases blank (as benchmarks/decode.py
    does), so that greedy decoding avoids random weights' all-blank output. On the espeak-ng
    clips that still emits `max_symbols` tokens on most frames (duration 0): 2150 tokens for
    17 s. `speech_rate` also biases the duration head away from 0, which gives ~6 tokens per
    second (106 for the same 17 s), as real speech has.
    """
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        words = [
            "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
            for _ in range(5000)
        ]
        text.write_text(
            "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(20000))
        )
        create_spt_model(str(text), vocab_size=1024, sample_size=-1, do_lower_case=True, output_dir=tmp,
                         tokenizer_type="bpe")  # fmt: skip
        model = EncDecRNNTBPEModel(cfg=OmegaConf.create(tdt_config(tmp, layers))).eval()
        if speechlike:
            with torch.no_grad():
                model.joint.joint_net[-1].weight.mul_(8.0)
                blank = model.joint.num_classes_with_blank - 1 - model.joint.num_extra_outputs
                model.joint.joint_net[-1].bias[blank] += 6.0
                if speech_rate:  # the first duration output is duration 0
                    model.joint.joint_net[-1].bias[-model.joint.num_extra_outputs] -= 8.0
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(path))
