"""Manifests, the shard store, the one-process job and the scores, with a stand-in
transcriber (the apps' real models are tested at the root: tests/test_corpus_*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mlx_audio_frontend import resample
from speech_corpus import (
    EvaluationError,
    ManifestError,
    Store,
    evaluate,
    normalizer,
    read_manifest,
    run_local,
)
from speech_transcript import Transcript, Word

RATE = 16000


class Lengths:
    """Transcribes each input as its sample count; remembers every batch it was given."""

    sample_rate = RATE

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, samples: list[np.ndarray]) -> list[Transcript]:
        self.batches.append([len(s) for s in samples])
        return [Transcript(text=str(len(s)), duration=len(s) / RATE, model="lengths",
                           words=[Word(str(len(s)), 0.0, len(s) / RATE)]) for s in samples]  # fmt: skip


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Five clips of 0.5 .. 2.5 s in a sub-folder, named relatively, and a missing one."""
    (tmp_path / "audio").mkdir()
    rows = []
    for n in (3, 1, 5, 2, 4):
        sf.write(tmp_path / "audio" / f"{n}.wav", np.full(n * RATE // 2, 0.1, np.float32), RATE)
        rows.append(
            {"audio_filepath": f"audio/{n}.wav", "duration": n / 2, "text": f"clip {n}", "id": n}
        )
    rows.insert(2, {"audio_filepath": "audio/missing.wav", "duration": 9.0, "text": "gone"})
    return write_manifest(tmp_path, rows)


def test_rows_in_input_order_batched_longest_first(corpus: Path, tmp_path: Path) -> None:
    model = Lengths()
    report = run_local(
        read_manifest(corpus), model, tmp_path / "out.jsonl", batch_size=2, words=True
    )
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == report.rows
    assert [r.get("id") for r in rows] == [3, 1, None, 5, 2, 4]  # every input field kept, in order
    assert [r.get("pred_text") for r in rows] == ["24000", "8000", None, "40000", "16000", "32000"]
    assert rows[0]["words"] == [{"word": "24000", "start": 0.0, "end": 1.5}]
    assert rows[2]["error"] == f"{tmp_path / 'audio/missing.wav'}: no such file"
    # NeMo's presort: longest stated duration first (the missing 9 s row opens the first batch)
    assert model.batches == [[40000], [32000, 24000], [16000, 8000]]
    assert (report.ran, report.resumed, report.failed) == (6, 0, 1)
    assert report.audio_seconds == pytest.approx(7.5)
    assert not (tmp_path / "out.jsonl.parts").exists()


def test_rerun_resumes_and_retries_failed_rows(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    entries = read_manifest(corpus)
    first = run_local(entries, Lengths(), out, batch_size=2)
    model = Lengths()
    again = run_local(entries, model, out, batch_size=2)
    assert again.rows == first.rows
    assert (again.ran, again.resumed) == (1, 5)  # only the failed row runs again
    assert model.batches == []  # ... and it still cannot be read


def test_interrupted_job_keeps_finished_batches(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    entries = read_manifest(corpus)

    class Dies(Lengths):
        def __call__(self, samples):
            if len(self.batches) == 2:
                raise KeyboardInterrupt
            return super().__call__(samples)

    with pytest.raises(KeyboardInterrupt):
        run_local(entries, Dies(), out, batch_size=2)
    assert not out.exists()  # never a partial output manifest
    model = Lengths()
    report = run_local(entries, model, out, batch_size=2)
    assert report.resumed == 3  # the two batches before the interruption (the missing row re-runs)
    assert model.batches == [[16000], [8000]]  # the missing row takes a place in the first
    assert [r.get("pred_text") for r in report.rows] == [
        "24000",
        "8000",
        None,
        "40000",
        "16000",
        "32000",
    ]


def test_store_counts_a_repeated_row_once(tmp_path: Path, corpus: Path) -> None:
    entries = read_manifest(corpus)
    store = Store(tmp_path / "out.jsonl")
    for e in entries:
        store.write([(e.index, {**e.row, "pred_text": "first"})])
    store.write(
        [
            (1, {**entries[1].row, "pred_text": "again"}),
            (0, {**entries[0].row, "pred_text": "again"}),
        ]
    )
    rows = store.merge(entries)  # a retried batch: either copy (they are alike), once
    assert [r["audio_filepath"] for r in rows] == [e.row["audio_filepath"] for e in entries]
    assert [r["pred_text"] for r in rows][2:] == ["first"] * 4


def test_output_of_another_manifest_is_refused(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"audio_filepath": "other.wav", "pred_text": "x"}) + "\n")
    with pytest.raises(ManifestError, match="is not this manifest's output"):
        run_local(read_manifest(corpus), Lengths(), out)


def test_offset_and_duration_cut_at_the_files_rate(tmp_path: Path) -> None:
    """With `offset`, `duration` seconds from it at the file's own rate (lhotse's rounding:
    half up), then resampled; without it, the whole file (NeMo's lhotse reader)."""
    signal = np.sin(np.arange(8000 * 3) * 0.01).astype(np.float32) * 0.5
    sf.write(tmp_path / "a.wav", signal, 8000, subtype="FLOAT")
    manifest = write_manifest(tmp_path, [
        {"audio_filepath": "a.wav", "duration": 1.00006, "offset": 0.50006},
        {"audio_filepath": str(tmp_path / "a.wav"), "duration": 1.0},
    ])  # fmt: skip
    cut, whole = read_manifest(manifest)
    # 0.50006 s x 8000 = 4000.48 -> 4000; 1.00006 s -> 8000.48 -> 8000
    np.testing.assert_array_equal(cut.samples(RATE), resample(signal[4000:12000], 8000, RATE))
    assert len(whole.samples(RATE)) == 2 * len(signal)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "in.jsonl:2: not a manifest row"),
        ('{"duration": 1}', "in.jsonl:2: not a manifest row (audio_filepath: Field required)"),
        (
            '{"audio_filepath": "a.wav", "duration": -1}',
            "in.jsonl:2: duration and offset must be >= 0",
        ),
        ("[1, 2]", "in.jsonl:2: not a manifest row (not a JSON object)"),
    ],
)
def test_malformed_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"audio_filepath": "a.wav", "duration": 1}\n' + line + "\n")
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(path)


def test_scores_per_row_and_in_total() -> None:
    rows = [
        {"text": "Call Anna, now!", "pred_text": "call anna now"},
        {"text": "seven thirty", "pred_text": "seven forty two"},
        {"text": "gone", "error": "missing.wav: no such file"},
    ]
    raw = evaluate(rows, "none", rtfx=12.5)
    assert [r.wer for r in raw.per_row] == [1.0, 1.0, None]  # 3 of 3, 2 of 2 words wrong
    assert (raw.wer, raw.substitutions, raw.insertions, raw.failed, raw.scored) == (1.0, 4, 1, 1, 2)
    nemo = evaluate(rows, "nemo")
    assert [r.wer for r in nemo.per_row[:2]] == [0.0, 1.0]
    assert nemo.wer == pytest.approx(2 / 5)  # one substitution and one insertion, 5 words
    # "thirty" -> "forty two": t>f, h>o, i deleted, then " two" inserted: 7 edits, 25 characters
    assert nemo.cer == pytest.approx(7 / 25)
    assert "normaliser: nemo" in nemo.table()


def test_whisper_normaliser_is_whispers() -> None:
    whisper = normalizer("whisper")
    assert whisper("Mr. Smith said: it's twenty-five past 7, colour!") == (
        "mister smith said it is 25 past 7 color"
    )
    score = evaluate([{"text": "twenty five", "pred_text": "25"}], "whisper")
    assert score.wer == 0.0


def test_eval_needs_every_reference() -> None:
    with pytest.raises(EvaluationError, match="row 1 has none"):
        evaluate([{"text": "a", "pred_text": "a"}, {"pred_text": "b"}])
    with pytest.raises(EvaluationError, match="unknown normaliser"):
        normalizer("lower")
