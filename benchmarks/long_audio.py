"""Memory and time of `parakeet` from 1 minute to 1 hour of speech, 0.6b geometry, CPU.

    python benchmarks/long_audio.py                  # 1, 10 and 60 minutes
    python benchmarks/long_audio.py --minutes 1 5
    python benchmarks/long_audio.py --chunk-duration 240   # the README's table

Speech is synthesised with espeak-ng (several voices, random sentences) into the
git-ignored `.benchmarks-cache/`, as is the random-weight parakeet-tdt-0.6b-sized model
(`benchmarks/convert.py` builds it; that needs the `reference` group once). Each length runs
`parakeet` in a fresh process; the table gives wall time, real-time factor and the peak
resident memory of that process (from the kernel), and the peak relative to 1 minute's.
`parakeet`'s default runs every input whole (full attention up to its attention budget,
24.4 minutes at this geometry, then NeMo's local-attention recipe); `--chunk-duration S`
passes that option on (the README's table: 4-minute chunks with 15 s of overlap).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CACHE, speech


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--model", type=Path, default=CACHE / "tdt-0.6b.nemo")
    parser.add_argument("--chunk-duration", type=float, help="passed on to parakeet")
    args = parser.parse_args()
    if not args.model.exists():
        sys.exit(
            f"{args.model} is missing: run benchmarks/convert.py once (it needs the `reference` group)"
        )
    rows = []
    for minutes in args.minutes:
        audio = speech(minutes)
        with tempfile.TemporaryDirectory(dir=CACHE) as out:
            command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model", str(args.model),
                       "--cache-dir", str(CACHE / "models"), "--output-format", "json", "--output-dir", out,
                       "--quiet"]  # fmt: skip
            if args.chunk_duration:
                command += ["--chunk-duration", str(args.chunk_duration)]
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
