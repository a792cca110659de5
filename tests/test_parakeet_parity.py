"""`parakeet --output-format json` against NeMo's `transcribe` on every fixture model and clip.

A language-prompt model (nemotron-3.5-asr-streaming-0.6b) runs once per recorded language,
`--language X` against NeMo's `transcribe(..., target_lang=X)` (`auto`: no option, NeMo's
default); its JSON says the language used. NeMo's hybrid prompt class (`hybrid_prompt_streaming`)
runs so with each head (`--head ctc` against NeMo's `transcribe` with its CTC decoder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODELS = ["models/tdt", "models/rnnt", "models/ctc", "models/hybrid_tdt_ctc",
          # NVIDIA's released checkpoints, configured as published (make_checkpoint_fixtures.py)
          "checkpoints/parakeet-tdt-0.6b-v2", "checkpoints/parakeet-tdt-0.6b-v3",
          "checkpoints/parakeet-rnnt-1.1b", "checkpoints/parakeet-ctc-1.1b",
          "checkpoints/parakeet-tdt_ctc-110m",
          # NeMo's character-vocabulary classes (make_char_checkpoint_fixtures.py)
          "checkpoints/stt_zh_conformer_transducer_large", "checkpoints/conformer_ctc_char",
          "checkpoints/conformer_hybrid_transducer_ctc_char",
          # a language-prompt model, per target language (make_streaming_checkpoint_fixtures.py)
          *(f"checkpoints/nemotron-3.5-asr-streaming-0.6b@{lang}" for lang in ("auto", "en-US", "de-DE")),
          # NeMo's hybrid prompt class, per language and head (`#ctc`: `--head ctc`)
          *(f"checkpoints/hybrid_prompt_streaming@{lang}{head}"
            for lang in ("auto", "en-US", "de-DE") for head in ("", "#ctc"))]  # fmt: skip
CLIPS = list(json.loads((FIXTURES / "audio" / "clips.json").read_text())["clips"])
SHORT = "shorter_than_frame_16k.wav"  # under 1 s: NeMo pads it (see below)


@pytest.fixture(scope="module", params=MODELS, ids=lambda name: name.split("/")[1])
def run(request, tmp_path_factory):
    name, _, rest = request.param.partition("@")
    language, _, head = rest.partition("#")
    cache = tmp_path_factory.mktemp("cache")
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", *[str(FIXTURES / "audio" / c) for c in CLIPS],
               "--model", str(FIXTURES / f"{name}.nemo"), "--output-format", "json",
               "--dtype", "float32", "--batch-size", "8", "--cache-dir", str(cache), "--quiet"]  # fmt: skip
    if language and language != "auto":  # auto: the default, as NeMo's
        command += ["--language", language]
    if head:
        command += ["--head", head]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    if language:  # NeMo's outputs in that language, and the language the JSON must name
        entry = meta["languages"][language]
        transcribed = entry["transcribe_ctc" if head == "ctc" else "transcribe"]
        meta = {**entry, "transcribe": transcribed, "language": language}
    return name, dict(zip(CLIPS, outputs, strict=True)), meta


def test_text_and_token_ids_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        expected = meta["transcribe"][clip]
        assert outputs[clip]["text"] == expected["text"], clip
        if "ids" in expected:  # NeMo keeps per-frame log-probabilities, not ids, for CTC models
            assert [t["id"] for t in outputs[clip]["tokens"]] == expected["ids"], clip


def _nemo_seconds(clip: str, seconds: float, duration: float) -> float:
    """NeMo's time as the JSON writes ours: on the input as given (NeMo pads inputs under
    1 s by half the missing second in front and does not take it back out of its times),
    within the input (a last span can reach past the audio's end: a TDT duration, an RNNT
    frame), to the millisecond. Encoder frames are 80 ms apart, so equal milliseconds are
    equal frames: the times are NeMo's exactly, frame for frame."""
    lead = (16000 - 1000) // 2 / 16000 if clip == SHORT else 0.0
    return round(min(duration, max(0.0, seconds - lead)), 3)


def _assert_times_equal(clip: str, ours: list[dict], theirs: list[dict], duration: float) -> None:
    assert len(ours) == len(theirs), clip
    for mine, nemo in zip(ours, theirs, strict=True):
        for key in ("start", "end"):
            assert mine[key] == _nemo_seconds(clip, nemo[key], duration), (clip, key, mine, nemo)


def test_token_times_equal_nemo(run):
    """Every token's start and end: NeMo's `char` offsets (TDT: frame + duration, the
    punctuation refinement; RNNT: one frame; CTC: from the previous token's first frame)."""
    _name, outputs, meta = run
    for clip in CLIPS:
        ours = outputs[clip]["tokens"]
        nemo_tokens = meta["transcribe"][clip]["timestamp"]["char"]
        _assert_times_equal(clip, ours, nemo_tokens, outputs[clip]["duration"])


def test_word_times_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        nemo_words = meta["transcribe"][clip]["timestamp"]["word"]
        ours = outputs[clip]["words"]
        assert [w["text"] for w in ours] == [w["word"] for w in nemo_words], clip
        _assert_times_equal(clip, ours, nemo_words, outputs[clip]["duration"])


def test_segments_equal_nemo(run):
    _name, outputs, meta = run
    for clip in CLIPS:
        nemo_segments = meta["transcribe"][clip]["timestamp"]["segment"]
        ours = outputs[clip]["segments"]
        assert [s["text"] for s in ours] == [s["segment"] for s in nemo_segments], clip
        _assert_times_equal(clip, ours, nemo_segments, outputs[clip]["duration"])


def test_the_json_names_the_language_used(run):
    """A prompt model's JSON names the language it ran (`auto` unless asked); others none."""
    _name, outputs, meta = run
    for clip in CLIPS:
        assert outputs[clip].get("language") == meta.get("language"), clip


PROMPT_MODEL = FIXTURES / "checkpoints" / "nemotron-3.5-asr-streaming-0.6b"


def _parakeet(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(FIXTURES / "audio" / CLIPS[0]),
               "--cache-dir", str(tmp_path / "cache"), "--quiet", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_an_unknown_language_is_one_line_listing_the_models_languages(tmp_path):
    result = _parakeet(tmp_path, "--model", f"{PROMPT_MODEL}.nemo", "--language", "xx-XX")
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("parakeet: error: language 'xx-XX' is not supported by this model; "
                           "supported: en-US, en, en-GB,")  # fmt: skip
    assert line.endswith("mt-MT, auto, nn-NO, nn")  # the model's own dictionary, in its order


def test_a_language_for_a_model_without_a_prompt_is_one_line(tmp_path):
    result = _parakeet(
        tmp_path, "--model", str(FIXTURES / "models" / "rnnt.nemo"), "--language", "de"
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "takes no target language" in line


def test_language_tags_are_stripped_where_the_config_says(tmp_path):
    """NeMo's `decoding.strip_lang_tags` (the recipe's setting; the real checkpoint keeps its
    tags): the text without `<xx-XX>` tags, as NeMo's `transcribe` writes it then."""
    from nemo_mlx_convert import convert_nemo
    from nemo_mlx_parakeet import load

    directory = tmp_path / "model"
    convert_nemo(f"{PROMPT_MODEL}.nemo", directory)
    config = json.loads((directory / "config.json").read_text())
    config["nemo_config"]["decoding"]["strip_lang_tags"] = True
    (directory / "config.json").write_text(json.dumps(config))
    model = load(str(directory), dtype="float32", verbose=False)
    meta = json.loads(PROMPT_MODEL.with_name(PROMPT_MODEL.name + ".json").read_text())
    stripped = meta["transcribe_strip_lang_tags"]
    kept = meta["languages"][meta["default_language"]]["transcribe"]
    assert any(stripped[c]["text"] != kept[c]["text"] for c in CLIPS)  # tags were written
    for clip in CLIPS:
        result = model.transcribe(str(FIXTURES / "audio" / clip))
        assert result.text == stripped[clip]["text"], clip
        assert [t.id for t in result.tokens] == stripped[clip]["ids"], clip
