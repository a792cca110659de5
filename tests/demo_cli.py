"""The demo model's `parakeet` CLI on fixture clips, held to NeMo's recorded transcripts:
shared by the biasing and beam-fusion parity tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def check_cli_clips(
    tmp_path: Path, head: str, options: list[str], folder: Path, files: list[str],
    expected: dict, label: tuple,
) -> None:  # fmt: skip
    """Run `parakeet --model demo` with `options` on `files` (JSON lines) and assert each
    clip's text and token ids equal `expected[file]` (NeMo's)."""
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", "--model", "demo",
               "--head", "ctc" if head == "ctc" else "tdt", "--output-format", "json",
               "--cache-dir", str(tmp_path), "--quiet", *options,
               *(str(folder / f) for f in files)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for file, ours in zip(files, lines, strict=True):
        assert ours["text"] == expected[file]["text"], (*label, file)
        assert [t["id"] for t in ours["tokens"]] == expected[file]["ids"], (*label, file)
