"""`parakeet --manifest` and `canary --manifest` as subprocesses against NeMo's own outputs:
NeMo's `transcribe` on the same manifest (tests/reference/make_manifest_fixture.py: whole
clips and offset/duration cuts, relative paths) and on the Canary fixture's clips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "fixtures" / "demo"
NEMO = json.loads((DEMO / "manifest_nemo.json").read_text())
MODELS = ROOT / "tests" / "fixtures" / "models"
AUDIO = ROOT / "tests" / "fixtures" / "audio"


def run(app: str, *args: str, cache: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", f"nemo_mlx_{app}.cli", *args, "--cache-dir", str(cache)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_manifest_rows_equal_nemos_transcribe_on_the_manifest(cache, tmp_path):
    """Relative paths, offsets and durations as NeMo reads them: NeMo's text, and NeMo's word
    times (relative to the cut, as NeMo gives them), in the manifest's order."""
    out = tmp_path / "out.jsonl"
    result = run("parakeet", "--model", "demo", "--manifest", str(DEMO / "manifest.jsonl"),
                 "--output-manifest", str(out), "--words", "--batch-size", "4", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = rows(out)
    inputs = rows(DEMO / "manifest.jsonl")
    assert [{k: r[k] for k in inputs[i]} for i, r in enumerate(got)] == inputs  # fields kept
    assert [r["pred_text"] for r in got] == [r["text"] for r in NEMO["rows"]]
    for ours, nemo in zip(got, NEMO["rows"], strict=True):
        if nemo["duration"] >= 1.0:  # under 1 s: test_short_cut_word_times_equal_nemos
            assert ours["words"] == nemo_times(nemo), nemo["audio_filepath"]


@pytest.mark.xfail(strict=True, reason="known gap: a cut under 1 s (row 9, 0.93 s from 1.1 s): "
                   "NeMo starts its last word ('four') one encoder frame earlier than this "
                   "project does; its text and the other times agree. Not yet explained: NeMo's "
                   "lhotse padding of a cut may split the zeros differently from `padding_for`")  # fmt: skip
def test_short_cut_word_times_equal_nemos(cache, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run("parakeet", "--model", "demo", "--manifest", str(DEMO / "manifest.jsonl"),
                 "--output-manifest", str(out), "--words", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    short = [(o, n) for o, n in zip(rows(out), NEMO["rows"], strict=True) if n["duration"] < 1.0]
    assert short
    assert all(ours["words"] == nemo_times(nemo) for ours, nemo in short)


def nemo_times(row: dict) -> list[dict]:
    """NeMo's word times (batch size 1) under the two rules apps/parakeet/README.md states:
    an input under 1 s is padded to 1 s, half in front, and NeMo's times count that half,
    ours do not; no time runs past the input's end. Sample counts: a cut is lhotse's
    round(duration x 16 kHz), a whole clip its file's length."""
    samples = round(row["duration"] * 16000)
    before = (16000 - samples) // 2 if samples < 16000 else 0
    end = samples / 16000

    def at(t: float) -> float:
        return min(end, max(0.0, t - before / 16000))

    return [{"word": w["word"], "start": at(w["start"]), "end": at(w["end"])} for w in row["words"]]


def test_bad_rows_are_recorded_and_a_rerun_resumes(cache, tmp_path):
    shutil.copytree(DEMO / "clips", tmp_path / "clips")
    (tmp_path / "clips" / "corrupt.flac").write_bytes(b"fLaC" + b"\x00" * 200)
    good = rows(DEMO / "manifest.jsonl")[:3]
    bad = [{"audio_filepath": "clips/missing.flac", "duration": 1.0, "text": "x"},
           {"audio_filepath": "clips/corrupt.flac", "duration": 1.0, "text": "y"}]  # fmt: skip
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [good[0], bad[0], *good[1:], bad[1]]))
    out = tmp_path / "out.jsonl"
    args = ["--model", "demo", "--manifest", str(manifest), "--output-manifest", str(out)]
    first = run("parakeet", *args, "--eval", cache=cache)
    assert first.returncode == 1  # some rows failed: the exit says so, the job went on
    got = rows(out)
    assert [r.get("pred_text") for r in got] == [
        NEMO["rows"][0]["text"], None, NEMO["rows"][1]["text"], NEMO["rows"][2]["text"], None
    ]  # fmt: skip
    assert got[1]["error"] == f"{tmp_path / 'clips/missing.flac'}: no such file"
    assert got[4]["error"].startswith(f"{tmp_path / 'clips/corrupt.flac'}: ")
    scores = json.loads(out.with_suffix(".eval.json").read_text())
    assert (scores["rows"], scores["scored"], scores["failed"]) == (5, 3, 2)
    assert "WER" in first.stdout
    again = run("parakeet", *args, cache=cache)
    assert "(2 run now, 3 finished before, 2 failed)" in again.stderr
    assert rows(out) == got


def test_canary_manifest_equals_nemos_transcribe(cache, tmp_path):
    meta = json.loads((MODELS / "canary.json").read_text())
    expected = meta["transcribe"]["en_asr_pnc"]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(AUDIO / name), "duration": 1.0}) + "\n"
                                for name in expected))  # fmt: skip
    out = tmp_path / "out.jsonl"
    result = run("canary", "--model", str(MODELS / "canary.nemo"), "--manifest", str(manifest),
                 "--output-manifest", str(out), "--quiet", cache=cache)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [r["pred_text"] for r in rows(out)] == [v["text"] for v in expected.values()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval"], "parakeet: error: --eval needs --manifest"),
        (["--manifest", "in.jsonl"], "parakeet: error: --manifest needs --output-manifest"),
        (["x.wav", "--manifest", "in.jsonl", "--output-manifest", "o.jsonl"],
         "parakeet: error: --manifest takes no audio files"),
    ],
)  # fmt: skip
def test_manifest_usage_errors_are_one_line(cache, args, message):
    result = run("parakeet", "--model", "demo", *args, cache=cache)
    assert result.returncode != 0
    assert result.stderr.strip() == message


def test_eval_without_reference_texts_is_one_line(cache, tmp_path):
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(DEMO / "clips/test-00000.flac")}) + "\n")
    result = run("parakeet", "--model", "demo", "--manifest", str(manifest), "--output-manifest",
                 str(tmp_path / "o.jsonl"), "--eval", cache=cache)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "parakeet: error: --eval needs a `text` in every row; row 0 has none (1 row(s) lack it)"
    )
