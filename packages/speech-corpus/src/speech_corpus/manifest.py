"""NeMo JSONL manifests: one JSON object per line with `audio_filepath` (relative paths
are taken from the manifest's folder), `duration` and optionally `offset` and `text`; any
other field is kept and written back untouched."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, ValidationError

from mlx_audio_frontend import AudioError, load_samples, resample


class ManifestError(ValueError):
    """A manifest that cannot be read as a whole (a malformed line); one line, naming it."""


class _Row(BaseModel):
    """The fields a row must have right for a job to use it; the others pass through."""

    model_config = ConfigDict(extra="allow")
    audio_filepath: str
    duration: float | None = None
    offset: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class Entry:
    """Row `index` (0-based, the manifest's line order) of the manifest in `folder`."""

    index: int
    row: dict[str, Any]
    folder: Path

    @property
    def path(self) -> Path:
        """The audio file: `audio_filepath`, relative to the manifest's folder unless absolute."""
        return self.folder / Path(self.row["audio_filepath"]).expanduser()

    @property
    def duration(self) -> float:
        """The row's stated duration (0 when it has none): the sort key of batching."""
        return float(self.row.get("duration") or 0.0)

    def samples(self, rate: int) -> np.ndarray:
        """The row's mono samples at `rate` Hz. Without `offset`, the whole file (NeMo's
        lhotse reader ignores `duration` then); with it, `duration` seconds from `offset`,
        cut at the file's own rate with lhotse's sample rounding, then resampled. AudioError
        naming the file when it cannot be read."""
        offset = self.row.get("offset")
        if offset is None:
            return load_samples(str(self.path), rate)
        try:
            native = sf.info(str(self.path)).samplerate
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(f"{self.path}: cannot read it to cut at an offset ({err})") from None
        whole = load_samples(str(self.path), native)
        first = _sample_count(float(offset), native)
        if first >= len(whole):
            raise AudioError(f"{self.path}: offset {offset} s is past its end")
        duration = self.row.get("duration")
        count = len(whole) - first if duration is None else _sample_count(duration, native)
        piece = whole[first : first + count]
        return piece if native == rate else resample(piece, native, rate)


def _sample_count(seconds: float, rate: int) -> int:
    """lhotse's `compute_num_samples`: seconds x rate rounded half up."""
    exact = Decimal(round(seconds * rate, ndigits=8))
    return int(exact.quantize(0, rounding=ROUND_HALF_UP))


def read_manifest(path: str | Path) -> list[Entry]:
    """The manifest's rows in order. ManifestError for a line that is not a JSON object with
    a string `audio_filepath` and numeric `duration`/`offset` (blank lines are skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ManifestError(f"cannot read manifest {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {path} is not UTF-8 text") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ManifestError("not a JSON object")
            _Row.model_validate(row)
        except (json.JSONDecodeError, ManifestError, ValidationError) as err:
            raise ManifestError(f"{path}:{number}: not a manifest row ({_reason(err)})") from None
        if any(not math.isfinite(row[k]) or row[k] < 0 for k in ("duration", "offset")
               if row.get(k) is not None):  # fmt: skip
            raise ManifestError(f"{path}:{number}: duration and offset must be >= 0")
        entries.append(Entry(len(entries), row, path.parent))
    return entries


def _reason(err: Exception) -> str:
    """A short reason for a bad line: pydantic's first error (field and message) or the text."""
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "row"
        return f"{where}: {first['msg']}"
    return str(err).split(":")[0] if isinstance(err, json.JSONDecodeError) else str(err)


def longest_first(entries: list[Entry]) -> list[Entry]:
    """NeMo's `transcribe_speech.py` presort: by stated duration, longest first (stable)."""
    return sorted(entries, key=lambda e: e.duration, reverse=True)
