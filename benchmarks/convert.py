"""Converting a parakeet-tdt-0.6b-sized `.nemo`: wall time and peak memory of the converter.

Needs the `reference` dependency group (NeMo, torch) to build the model once:

    python benchmarks/convert.py                 # builds .benchmarks-cache/tdt-0.6b.nemo once

A random-weight EncDecRNNTBPEModel of nvidia/parakeet-tdt-0.6b-v2's geometry (FastConformer
24 x 1024, 128 mels, prediction net and joint 640, vocabulary 1024, TDT durations 0-4) is
built with NeMo's classes and saved with `save_to` into the git-ignored cache directory.
Then `nemo-mlx-convert` runs in a fresh process (no torch imported there), timed from
start to exit, its peak resident memory read from the kernel (`ru_maxrss` of the child).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CACHE, build_tdt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=CACHE / "tdt-0.6b.nemo")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    if not args.model.exists():
        print(f"building {args.model} with NeMo (once) ...", file=sys.stderr)
        build_tdt(args.model)
    size = args.model.stat().st_size
    with tempfile.TemporaryDirectory(dir=CACHE) as out:
        command = [sys.executable, "-m", "nemo_mlx_convert.cli", str(args.model), f"{out}/model",
                   "--dtype", args.dtype, "--quiet"]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kilobytes on Linux
    if result.returncode != 0:
        sys.exit(result.stderr.strip())
    print(result.stdout.strip())
    print(f"checkpoint {size / 2**30:.2f} GiB -> {args.dtype}: {elapsed:.1f} s wall, "
          f"peak RSS {peak / 2**30:.2f} GiB = {peak / size:.2f}x the checkpoint")  # fmt: skip


if __name__ == "__main__":
    main()
