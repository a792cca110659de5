"""Canary timestamps (frame tokens in the output) against NeMo's `transcribe(timestamps=...)`.

The fixture (tests/reference/make_canary_timestamps_fixture.py, NeMo 3.0.0) is the Canary
fixture model with its frame tokens let through, so that it writes `<|n|>` tokens; NeMo's
`process_aed_timestamp_outputs` turned them into words and segments. Ids, text, word and
segment times must be NeMo's, through the API and the `canary` command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from canary_checks import check_transcript

import nemo_mlx_canary as canary

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODELS, AUDIO = FIXTURES / "models", FIXTURES / "audio"
META = json.loads((MODELS / "canary_timestamps.json").read_text())
CLIPS = list(META["transcribe"]["en_asr_pnc"])
PROMPTS = list(META["transcribe"])


def _options(prompt: str) -> dict:
    source, target = prompt.split("_")[:2]
    return {"source_lang": source, "target_lang": "en" if target == "asr" else target,
            "pnc": prompt.endswith("_pnc")}  # fmt: skip


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("canary_ts") / "model"
    command = [sys.executable, "-m", "nemo_mlx_convert.cli", str(MODELS / "canary_timestamps.nemo"),
               str(out), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def model(converted) -> canary.Canary:
    return canary.load(str(converted), dtype="float32", verbose=False)


def test_the_fixture_covers_the_parser():
    stats = META["stats"]
    assert stats["outputs_with_words"] == stats["outputs"]
    assert stats["outputs_with_several_segments"] >= 3
    assert stats["empty_pairs_skipped"] >= 1
    silence = META["transcribe_other_clips"]["silence_padded_16k.wav"]
    assert "<|" not in silence["raw_text"]
    assert not silence["timestamp"]["word"]


def test_prompt_asks_for_timestamps(model):
    assert model.has_timestamps
    for prompt in PROMPTS:
        ids = model.prompt(canary.PromptOptions(**_options(prompt), timestamps=True))
        assert ids == META["prompts"][prompt]["ids"], prompt
        ids = model.prompt(canary.PromptOptions(**_options(prompt), timestamps=False))
        assert ids == META["prompts"][f"{prompt}_notimestamp"]["ids"], prompt


@pytest.mark.parametrize(
    ("key", "timestamps", "batch_size", "decoding"),
    [("transcribe", True, 1, "greedy"), ("transcribe_batched", True, len(CLIPS), "greedy"),
     ("transcribe_no_timestamps", False, 1, "greedy"), ("transcribe_beam", True, 1, "beam")],
    ids=["greedy", "greedy-batched", "no-timestamps", "beam"],
)  # fmt: skip
def test_transcribe_timestamps_equal_nemo(model, key, timestamps, batch_size, decoding):
    """With timestamps=False NeMo still parses what the model wrote: so do we."""
    for prompt in PROMPTS:
        results = model.transcribe(
            [str(AUDIO / c) for c in CLIPS], timestamps=timestamps, batch_size=batch_size,
            decoding=decoding, beam_size=META["beam"]["beam_size"], **_options(prompt),
        )  # fmt: skip
        for clip, result in zip(CLIPS, results, strict=True):
            check_transcript(result, META[key][prompt][clip], where=(prompt, clip))


def test_other_clips_equal_nemo_with_times_on_the_input(model):
    """Silence, an odd length, and a clip under 1 s, which NeMo pads to 1 s (half in front)
    without moving its times back; ours refer to the input as given."""
    for clip, expected in META["transcribe_other_clips"].items():
        result = model.transcribe(str(AUDIO / clip), timestamps=True, **_options("en_asr_pnc"))
        missing = max(0, 16000 - expected["num_samples"])
        check_transcript(result, expected, lead=(missing // 2) / 16000, where=clip)


def test_tokens_inside_a_pair_get_its_times(model):
    result = model.transcribe(str(AUDIO / CLIPS[0]), timestamps=True, **_options("en_asr_pnc"))
    frame = META["frame_seconds"]
    for word in result.words:
        inside = [t for t in result.tokens if (t.start, t.end) == (word.start, word.end)]
        assert word.text.replace(" ", "") in "".join(t.text for t in inside).replace(" ", "")
    frames = [t for t in result.tokens if t.text.startswith("<|")]
    assert frames
    assert all(t.start == t.end for t in frames)
    assert all(abs(t.start / frame - round(t.start / frame)) < 1e-6 for t in frames)


def _canary(*args: str, cache: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "nemo_mlx_canary.cli",
        *args,
        "--cache-dir",
        str(cache),
        "--quiet",
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_cli_timestamps_json_and_srt_equal_nemo(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    clips = [str(AUDIO / c) for c in CLIPS]
    result = _canary(*clips, "--model", str(MODELS / "canary_timestamps.nemo"), "--timestamps",
                     "--output-format", "all", "--output-dir", str(out), cache=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for clip in CLIPS:
        expected = META["transcribe"]["en_asr_pnc"][clip]
        data = json.loads((out / f"{Path(clip).stem}.json").read_text())
        assert data["text"] == expected["text"]
        assert [t["id"] for t in data["tokens"]] == expected["ids"]
        words = expected["timestamp"]["word"]
        assert [(w["text"], w["start"], w["end"]) for w in data["words"]] == [
            (w["word"], round(w["start"], 3), round(w["end"], 3)) for w in words
        ]
        srt = (out / f"{Path(clip).stem}.srt").read_text()
        for segment in expected["timestamp"]["segment"]:
            assert segment["segment"].split()[0] in srt


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("canary: error: ")
    return lines[0]


def test_cli_timestamps_on_a_model_without_a_timestamp_slot_is_one_line(converted, tmp_path):
    """canary-1b's `canary` prompt format has no timestamp slot."""
    v1 = tmp_path / "v1"
    shutil.copytree(converted, v1)
    config = json.loads((v1 / "config.json").read_text())
    config["nemo_config"]["prompt_format"] = "canary"
    (v1 / "config.json").write_text(json.dumps(config))
    line = _one_line_error(
        _canary(str(AUDIO / CLIPS[0]), "--model", str(v1), "--timestamps", cache=tmp_path)
    )
    assert "cannot give timestamps" in line
    assert "(canary)" in line
