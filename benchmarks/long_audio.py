"""Memory and time of `parakeet` from 1 minute to 1 hour of speech, 0.6b geometry, CPU.

    python benchmarks/long_audio.py                  # 1, 10 and 60 minutes
    python benchmarks/long_audio.py --minutes 1 5

Speech is synthesised with espeak-ng (several voices, random sentences) into the
git-ignored `.benchmarks-cache/`, as is the random-weight parakeet-tdt-0.6b-sized model
(`benchmarks/convert.py` builds it; that needs the `reference` group once). Each length runs
`parakeet` in a fresh process; the table gives wall time, real-time factor and the peak
resident memory of that process (from the kernel), and the peak relative to 1 minute's.
Inputs over 5 minutes are transcribed in 4-minute chunks with 15 s of overlap.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parents[1] / ".benchmarks-cache"
WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "that",
    "is",
    "was",
    "he",
    "for",
    "it",
    "with",
    "as",
    "his",
    "on",
    "be",
    "at",
    "by",
    "had",
    "are",
    "but",
    "from",
    "or",
    "have",
    "an",
    "they",
    "which",
    "one",
    "you",
    "were",
    "all",
    "we",
    "her",
    "she",
    "there",
    "would",
    "their",
    "will",
    "when",
    "who",
    "him",
    "been",
    "has",
    "more",
    "if",
    "no",
    "out",
    "do",
    "so",
    "can",
    "what",
    "up",
    "said",
    "about",
    "other",
    "into",
    "than",
    "its",
    "time",
    "only",
    "could",
    "new",
    "them",
    "man",
    "some",
    "these",
    "then",
    "two",
    "first",
    "may",
    "any",
    "like",
    "now",
    "my",
    "such",
    "make",
    "over",
    "our",
    "even",
    "most",
    "me",
    "state",
    "after",
    "also",
    "made",
    "many",
    "did",
    "must",
    "before",
    "back",
    "see",
    "through",
    "way",
    "where",
    "get",
    "much",
    "go",
    "well",
    "your",
    "know",
    "should",
    "down",
    "work",
    "year",
    "because",
    "come",
    "people",
    "just",
    "say",
    "each",
    "those",
    "take",
    "day",
    "good",
    "how",
]
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en-gb+m3"]


def speech(minutes: float) -> Path:
    """A 16 kHz mono WAV of about `minutes` of espeak-ng speech (cached)."""
    path = CACHE / f"speech-{minutes:g}min.wav"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    target = int(minutes * 60 * 16000)
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
            with wave.open(str(resampled)) as w:
                samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            parts.append(samples)
            total += len(samples)
    audio = np.concatenate(parts)[:target]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.tobytes())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--model", type=Path, default=CACHE / "tdt-0.6b.nemo")
    args = parser.parse_args()
    if not args.model.exists():
        sys.exit(
            f"{args.model} is missing: run benchmarks/convert.py once (it needs the `reference` group)"
        )
    rows = []
    for minutes in args.minutes:
        audio = speech(minutes)
        with tempfile.TemporaryDirectory(dir=CACHE) as out:
            command = [sys.executable, "-m", "parakeet.cli", str(audio), "--model", str(args.model),
                       "--cache-dir", str(CACHE / "models"), "--output-format", "json", "--output-dir", out,
                       "--quiet"]  # fmt: skip
            start = time.perf_counter()
            child = subprocess.Popen(command, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not all children's
            elapsed = time.perf_counter() - start
            if status != 0:
                sys.exit(child.stderr.read().decode().strip())
        peak = usage.ru_maxrss * 1024  # kilobytes on Linux
        rows.append((minutes, elapsed, peak))
        print(f"{minutes:6g} min: {elapsed:7.1f} s  ({minutes * 60 / elapsed:5.1f}x real time)  "
              f"peak RSS {peak / 2**30:.2f} GiB", flush=True)  # fmt: skip
    base = rows[0][2]
    print(
        f"peak RSS relative to {rows[0][0]:g} min: "
        + ", ".join(f"{m:g} min {p / base:.2f}x" for m, _, p in rows)
    )


if __name__ == "__main__":
    main()
