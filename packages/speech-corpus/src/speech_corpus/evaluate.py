"""WER and CER of an output manifest against its `text`, per row and in total (jiwer), after
one of three normalisers: none, NeMo's (`speech_to_text_eval.py`'s text processing:
lower case, punctuation removed) or Whisper's English one (the Open ASR Leaderboard's,
from the `whisper-normalizer` package)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer

from speech_transcript.files import write_atomically

NORMALIZERS = ("none", "nemo", "whisper")
# NeMo's PunctuationCapitalization with do_lowercase and rm_punctuation: these marks become
# spaces and runs of spaces one (NeMo leaves the marks to its config; these are the usual).
NEMO_PUNCTUATION = ".,?!;:"


class EvaluationError(ValueError):
    """Rows without a reference text, or no row to score; one line."""


def normalizer(name: str) -> Callable[[str], str]:
    """The text normaliser called `name` (one of NORMALIZERS)."""
    if name == "none":
        return lambda text: text
    if name == "nemo":
        marks = re.compile(f"[{re.escape(NEMO_PUNCTUATION)}]")
        spaces = re.compile(r"\s{2,}")
        return lambda text: spaces.sub(" ", marks.sub(" ", text.lower())).strip()
    if name == "whisper":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    raise EvaluationError(f"unknown normaliser {name!r} (one of {', '.join(NORMALIZERS)})")


@dataclass
class RowScore:
    index: int
    wer: float | None
    cer: float | None
    reference: str
    hypothesis: str
    error: str | None = None  # the row's audio could not be read


@dataclass
class Evaluation:
    """Totals over the scored rows (edits over all reference words / characters, as jiwer
    scores a list), the rows that failed, RTFx, and each row's scores."""

    normalizer: str
    rows: int
    scored: int
    failed: int
    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    rtfx: float | None = None
    per_row: list[RowScore] = field(default_factory=list)

    def table(self) -> str:
        """The totals as a small text table."""
        rtfx = f"{self.rtfx:.1f}" if self.rtfx is not None else "-"
        head = f"{'rows':>6s} {'failed':>6s} {'WER':>7s} {'CER':>7s} {'subst':>6s} {'del':>5s} {'ins':>5s} {'words':>6s} {'RTFx':>7s}"
        line = (f"{self.rows:6d} {self.failed:6d} {self.wer:7.2%} {self.cer:7.2%} "
                f"{self.substitutions:6d} {self.deletions:5d} {self.insertions:5d} "
                f"{self.reference_words:6d} {rtfx:>7s}")  # fmt: skip
        return f"normaliser: {self.normalizer}\n{head}\n{line}\n"

    def write_json(self, path: str | Path) -> None:
        write_atomically(Path(path), json.dumps(asdict(self), indent=1) + "\n")


def check_references(rows: list[dict[str, Any]]) -> None:
    """EvaluationError unless every row has a `text` (checked before a job starts)."""
    missing = [i for i, row in enumerate(rows) if not isinstance(row.get("text"), str)]
    if missing:
        raise EvaluationError(f"--eval needs a `text` in every row; row {missing[0]} has none "
                              f"({len(missing)} row(s) lack it)")  # fmt: skip


def evaluate(
    rows: list[dict[str, Any]], normalizer_name: str = "none", rtfx: float | None = None
) -> Evaluation:
    """Score `rows` (an output manifest: `text` and `pred_text`, or `error`). Every row needs a
    `text`; failed rows are counted, not scored. A reference that normalises to nothing is
    scored on its own row only (0 or 1), not in the totals (jiwer refuses it there)."""
    normalize = normalizer(normalizer_name)
    check_references(rows)
    per_row: list[RowScore] = []
    refs: list[str] = []
    hyps: list[str] = []
    for index, row in enumerate(rows):
        reference = normalize(row["text"])
        if "pred_text" not in row:
            per_row.append(RowScore(index, None, None, reference, "", row.get("error")))
            continue
        hypothesis = normalize(row["pred_text"])
        per_row.append(RowScore(index, _rate(jiwer.wer, reference, hypothesis),
                                _rate(jiwer.cer, reference, hypothesis), reference, hypothesis))  # fmt: skip
        if reference.strip():  # jiwer refuses empty references in a list
            refs.append(reference)
            hyps.append(hypothesis)
    if not refs:
        raise EvaluationError("no row was transcribed: nothing to score")
    words = jiwer.process_words(refs, hyps)
    return Evaluation(
        normalizer=normalizer_name, rows=len(rows), scored=len(refs),
        failed=sum("pred_text" not in row for row in rows), wer=words.wer, cer=jiwer.cer(refs, hyps),
        substitutions=words.substitutions, deletions=words.deletions,
        insertions=words.insertions, reference_words=sum(len(r.split()) for r in refs),
        rtfx=rtfx, per_row=per_row,
    )  # fmt: skip


def _rate(measure: Callable[[str, str], float], reference: str, hypothesis: str) -> float:
    """jiwer's rate for one pair; an empty reference scores 0 if the hypothesis is empty too,
    else 1 (jiwer refuses an empty reference)."""
    if not reference.strip():
        return 0.0 if not hypothesis.strip() else 1.0
    return float(measure(reference, hypothesis))
