"""`nemo-mlx-convert SRC OUT_DIR`: a .nemo file or Hugging Face repo -> MLX model directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

from .convert import convert_nemo
from .errors import ConversionError
from .resolve import download_nemo, looks_like_repo_id

_LABELS = {"hash": "hashing", "extract": "extracting", "write": "writing"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), as the speech apps' parsers; this
    package depends on no app-level package, so it keeps its own four lines."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2)


class _Bars:
    """One tqdm bar per stage (hash, extract, write), on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(
                total=total,
                desc=_LABELS.get(stage, stage),
                unit="B",
                unit_scale=True,
                leave=False,
            )
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="nemo-mlx-convert",
        description="Convert an NVIDIA NeMo checkpoint (.nemo file or Hugging Face repo id) "
        "into an MLX model directory. No torch needed; nothing in the checkpoint is executed.",
    )
    parser.add_argument(
        "source", help="a .nemo file, or a Hugging Face repo id such as nvidia/parakeet-tdt-0.6b-v3"
    )
    parser.add_argument("output", type=Path, help="the model directory to create")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                        help="floating-point type of the written weights (default: float32)")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--revision", help="Hugging Face revision (branch, tag or commit)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    bars = _Bars(enabled=not args.quiet and sys.stderr.isatty())
    try:
        source, repo, revision, sha256 = Path(args.source).expanduser(), None, None, None
        if not source.exists() and looks_like_repo_id(args.source):
            repo = args.source
            source, sha256, revision = download_nemo(repo, args.revision)
        summary = convert_nemo(
            source, args.output, dtype=args.dtype, force=args.force, hf_repo=repo, hf_revision=revision,
            sha256=sha256, progress=bars,
        )  # fmt: skip
    except ConversionError as err:
        bars.close()
        print(f"nemo-mlx-convert: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bars.close()
        print("nemo-mlx-convert: interrupted; nothing was written", file=sys.stderr)
        return 130
    bars.close()
    print(
        f"{summary.output}: {summary.model_class.rsplit('.', 1)[-1]}, {summary.parameters / 1e6:.1f} M parameters "
        f"in {summary.tensors} tensors ({summary.bytes_written / 2**20:.1f} MiB), {summary.dropped} dropped on "
        f"purpose, {summary.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
