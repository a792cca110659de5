"""Where a job's finished rows are kept: shards written whole or not at all while the job
runs, merged into the output manifest in input order at the end. A rerun with the same
output reads both back and skips what is finished (resume); a row met twice (a batch that
Ray retried) counts once, by its index."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from speech_transcript.files import write_atomically

from .manifest import Entry, ManifestError


class Store:
    """The shards of `output` (in `<output>.parts/`) and `output` itself."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.parts = self.output.with_name(self.output.name + ".parts")

    def write(self, results: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """One shard of (row index, output row) pairs, named by the indices it holds: a batch
        written again (after a retry) replaces its own shard."""
        results = sorted(results, key=lambda pair: pair[0])
        if not results:
            return
        indices = ",".join(str(i) for i, _ in results).encode()
        name = f"{results[0][0]:09d}-{hashlib.sha1(indices).hexdigest()[:12]}.jsonl"
        lines = "".join(json.dumps({"index": i, "row": row}) + "\n" for i, row in results)
        write_atomically(self.parts / name, lines)

    def finished(self, entries: list[Entry]) -> dict[int, dict[str, Any]]:
        """The output rows already made for `entries`, by index: from an earlier complete
        output (rows with `pred_text`) and from the shards (the last word per index wins;
        rows with an `error` are not finished and run again). ManifestError when the
        existing output was made from another manifest."""
        done: dict[int, dict[str, Any]] = {}
        if self.output.exists():
            lines = [
                ln for ln in self.output.read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
            rows = [json.loads(line) for line in lines]
            same = len(rows) == len(entries) and all(
                r.get("audio_filepath") == e.row["audio_filepath"]
                for r, e in zip(rows, entries, strict=True)
            )
            if not same:
                raise ManifestError(f"{self.output} exists and is not this manifest's output: "
                                    "remove it or choose another --output-manifest")  # fmt: skip
            done.update((i, row) for i, row in enumerate(rows) if "pred_text" in row)
        if self.parts.is_dir():
            for shard in sorted(self.parts.glob("*.jsonl")):
                for line in shard.read_text(encoding="utf-8").splitlines():
                    item = json.loads(line)
                    if item["index"] < len(entries):
                        done[item["index"]] = item["row"]
        return {i: row for i, row in done.items() if "pred_text" in row}

    def merge(self, entries: list[Entry]) -> list[dict[str, Any]]:
        """Write the output manifest (every row once, in input order) atomically, then drop
        the shards; the rows written. Rows that no shard holds (none, after a finished job)
        would be a bug: ManifestError names how many."""
        by_index: dict[int, dict[str, Any]] = {}
        if self.output.exists():
            for i, line in enumerate(self.output.read_text(encoding="utf-8").splitlines()):
                if line.strip():
                    by_index[i] = json.loads(line)
        for shard in sorted(self.parts.glob("*.jsonl")) if self.parts.is_dir() else []:
            for line in shard.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                by_index[item["index"]] = item["row"]
        missing = [e.index for e in entries if e.index not in by_index]
        if missing:
            raise ManifestError(f"{len(missing)} row(s) have no result (first: row {missing[0]})")
        rows = [by_index[e.index] for e in entries]
        write_atomically(
            self.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
        shutil.rmtree(self.parts, ignore_errors=True)
        return rows
