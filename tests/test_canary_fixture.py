"""The NeMo Canary fixture model end to end, against what NeMo itself produced.

References come from tests/reference/make_canary_fixture.py (NeMo 3.0.0; CANARY.md lists
every key and the NeMo rule behind it). The model is converted with the `nemo-mlx-convert`
command and loaded through `canary.load`, as a user would. Each stage is checked on NeMo's
own input to that stage (features, encoder output, projected encoder states, per-step
logits under teacher forcing), then the decodings (greedy and beam, single and batched)
and the `transcribe` API and `canary` command.

Batched beam search in NeMo 3.0.0 mixes the clips' prompt states (CANARY.md, "Quirks"), so
the batched runs here are held to NeMo's single-clip results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

import nemo_mlx_canary as canary
from mlx_audio_frontend import load_audio
from mlx_conformer import Conformer
from mlx_seq2seq_decoder import TransformerDecoder, beam_search, greedy_search

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODELS, AUDIO = FIXTURES / "models", FIXTURES / "audio"
META = json.loads((MODELS / "canary.json").read_text())
with np.load(MODELS / "canary.npz") as _data:
    ARRAYS = {key: _data[key] for key in _data.files}
CLIPS = list(META["clips"])
PROMPTS = list(META["prompts"])
YES = ("yes", "1", "true", "True")


def _stem(clip: str) -> str:
    return Path(clip).stem


def _options(prompt: str) -> dict:
    """`transcribe` keyword arguments of ours for a fixture prompt (NeMo's slot values)."""
    kwargs = META["prompts"][prompt]["transcribe_kwargs"]
    return {
        "source_lang": kwargs["source_lang"],
        "target_lang": kwargs["target_lang"],
        "pnc": kwargs["pnc"] in YES,
    }


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def _nemo_encoded(clips: list[str]) -> tuple[mx.array, mx.array]:
    """NeMo's encoder outputs of `clips` as one zero-padded batch, with their lengths."""
    outs = [ARRAYS[f"encoded/{_stem(c)}"] for c in clips]
    batch = np.zeros((len(outs), max(len(o) for o in outs), outs[0].shape[1]), dtype=np.float32)
    for row, out in zip(batch, outs, strict=True):
        row[: len(out)] = out
    return mx.array(batch), mx.array([len(o) for o in outs])


def _paths(clips: list[str]) -> list[str]:
    return [str(AUDIO / c) for c in clips]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("canary") / "model"
    command = [sys.executable, "-m", "nemo_mlx_convert.cli", str(MODELS / "canary.nemo"),
               str(out), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def model(converted) -> canary.Canary:
    return canary.load(str(converted), dtype="float32", verbose=False)


@contextmanager
def _setting(model: canary.Canary, **values):
    saved = {name: getattr(model, name) for name in values}
    for name, value in values.items():
        setattr(model, name, value)
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


# --- the model as converted ------------------------------------------------------------


def test_model_reads_the_checkpoint_settings(model):
    assert model.prompt_format == META["prompt_format"]
    assert model.default_decoding == META["decoding"]["strategy"]
    assert model.languages == sorted(META["tokenizer"]["language_tokens"])
    config = model.decoder.config
    assert config.num_classes == META["tokenizer"]["decoder_vocab_size"]
    assert config.max_sequence_length == META["decoding"]["greedy"]["max_sequence_length"]
    assert config.memory_size == META["geometry"]["encoder_d_model"]
    assert config.hidden_size == META["geometry"]["decoder_hidden"]
    assert model.max_deltas["greedy"] == META["decoding"]["greedy"]["max_generation_delta"]
    assert model.max_deltas["beam"] == META["beam"]["settings"]["max_generation_delta"]


def test_converted_tensor_names_are_the_modules_parameters(model, converted):
    """The converter's tensor names are the encoder's and the decoder's parameter names
    under their prefixes: each loads strictly, and no converted tensor is left over."""
    names = {Conformer.PREFIX + k for k, _ in tree_flatten(model.encoder.parameters())}
    prefix = TransformerDecoder.PREFIX
    names |= {prefix + k for k, _ in tree_flatten(model.decoder.parameters())}
    assert set(mx.load(str(converted / "model.safetensors"))) == names


def test_tokenizer_layout_equals_nemo(model):
    tok, ref = model.tokenizer, META["tokenizer"]
    assert tok.vocab_size == ref["vocab_size"]
    assert [tok.piece(i) for i in range(tok.vocab_size)] == ref["vocabulary"]
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (ref["bos_id"], ref["eos_id"], ref["pad_id"])
    for piece, token_id in ref["special_tokens"].items():
        assert tok.special(piece) == token_id, piece


def test_tokenizer_examples_equal_nemo(model):
    tok = model.tokenizer
    for case in META["tokenizer_examples"]["encode"]:
        assert tok.encode(case["text"], case["lang"]) == case["ids"], case
        assert tok.decode(case["ids"]) == case["ids_to_text"], case
    for case in META["tokenizer_examples"]["decode"]:
        assert tok.decode(case["ids"]) == case["ids_to_text"], case


def test_prompt_ids_equal_nemo(model):
    for prompt in PROMPTS:
        ids = model.prompt(canary.PromptOptions(**_options(prompt)))
        assert ids == META["prompts"][prompt]["ids"], prompt


# --- front end, encoder, projection ----------------------------------------------------


def test_features_equal_nemo(model):
    clips = [c for c in CLIPS if f"features/{_stem(c)}" in ARRAYS]
    assert clips
    for clip in clips:
        features, length = model.frontend(load_audio(AUDIO / clip))
        assert int(length[0]) == META["clips"][clip]["feature_length"]
        expected = ARRAYS[f"features/{_stem(clip)}"]
        np.testing.assert_allclose(np.array(features[0]), expected, rtol=0, atol=1e-4)


def test_encoder_on_nemo_features(model):
    for clip in [c for c in CLIPS if f"features/{_stem(c)}" in ARRAYS]:
        features = mx.array(ARRAYS[f"features/{_stem(clip)}"])[None]
        encoded, length = model.encoder(features, mx.array([META["clips"][clip]["feature_length"]]))
        assert int(length[0]) == META["clips"][clip]["encoded_length"]
        assert _rel(np.array(encoded[0]), ARRAYS[f"encoded/{_stem(clip)}"]) <= 1e-4, clip


def test_encoder_from_audio_batched_equals_nemo(model):
    signals = [np.array(load_audio(AUDIO / c)) for c in CLIPS]
    batch = np.zeros((len(signals), max(map(len, signals))), dtype=np.float32)
    for row, signal in zip(batch, signals, strict=True):
        row[: len(signal)] = signal
    features, lengths = model.frontend(batch, [len(s) for s in signals])
    encoded, out_len = model.encoder(features, lengths)
    for i, clip in enumerate(CLIPS):
        expected = ARRAYS[f"encoded/{_stem(clip)}"]
        assert int(out_len[i]) == META["clips"][clip]["encoded_length"] == len(expected)
        assert _rel(np.array(encoded[i, : len(expected)]), expected) <= 1e-4, clip


def test_encoder_states_after_projection_equal_nemo(model):
    for clip in CLIPS:
        states = model.decoder.memory_proj(mx.array(ARRAYS[f"encoded/{_stem(clip)}"]))
        expected = ARRAYS[f"encoder_states/{_stem(clip)}"]
        assert states.shape == expected.shape
        assert _rel(np.array(states), expected) <= 1e-4, clip


# --- decoder ---------------------------------------------------------------------------


def test_logits_at_every_greedy_step_equal_nemo(model):
    """Teacher-forced on NeMo's greedy ids: step k's logits against NeMo's step k."""
    keys = [k for k in ARRAYS if k.startswith("greedy_logits/")]
    assert len(keys) >= len(PROMPTS)
    worst = 0.0
    for key in keys:
        _, prompt, stem = key.split("/")
        clip = next(c for c in CLIPS if _stem(c) == stem)
        reference = META["greedy"][prompt][clip]
        expected = ARRAYS[key]
        assert len(expected) == reference["steps"]
        memory, lengths = _nemo_encoded([clip])
        logits, cache = model.decoder.start(memory, lengths, [META["prompts"][prompt]["ids"]])
        rows = [logits]
        for token in reference["ids"][: reference["steps"] - 1]:
            rows.append(model.decoder.step(mx.array([token]), cache))
        for step, (ours, theirs) in enumerate(zip(rows, expected, strict=True)):
            error = _rel(np.array(ours[0]), theirs)
            worst = max(worst, error)
            assert error <= 1e-4, (key, step, error)
            assert int(np.argmax(theirs)) == int(mx.argmax(ours[0])), (key, step)
    assert worst > 0.0  # the comparison saw real numbers


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_greedy_on_nemo_encoder_output_equals_nemo(model, batched):
    tok = model.tokenizer
    for prompt in PROMPTS:
        ids = META["prompts"][prompt]["ids"]
        groups = [CLIPS] if batched else [[c] for c in CLIPS]
        for clips in groups:
            memory, lengths = _nemo_encoded(clips)
            found = greedy_search(model.decoder, memory, lengths, [ids] * len(clips),
                                  eos_id=tok.eos_id, max_delta=model.max_deltas["greedy"])  # fmt: skip
            for clip, result in zip(clips, found, strict=True):
                expected = META["greedy"][prompt][clip]
                assert result.tokens == expected["ids"], (prompt, clip)
                assert result.finished == expected["ended_with_eos"], (prompt, clip)
                assert tok.decode(result.tokens) == expected["text"], (prompt, clip)


@pytest.mark.parametrize("batch_size", [1, len(CLIPS)])
def test_transcribe_greedy_equals_nemo(model, batch_size):
    key = "transcribe" if batch_size == 1 else "transcribe_batched"
    for prompt in PROMPTS:
        results = model.transcribe(
            _paths(CLIPS), decoding="greedy", batch_size=batch_size, **_options(prompt)
        )
        for clip, result in zip(CLIPS, results, strict=True):
            expected = META[key][prompt][clip]
            assert [t.id for t in result.tokens] == expected["ids"], (prompt, clip)
            assert result.text == expected["text"], (prompt, clip)


def test_transcribe_padded_to_a_few_shapes_equals_nemo(model, monkeypatch):
    """What a GPU run does (`bucket_shapes`): the five clips' batch padded to 8 items (three
    repeats of the shortest) and 384 feature frames, NeMo's batched results all the same."""
    shapes: list[tuple[int, ...]] = []
    original = type(model.encoder).__call__

    def recorded(self, features, *args, **kwargs):
        shapes.append(tuple(features.shape[:2]))
        return original(self, features, *args, **kwargs)

    monkeypatch.setattr(type(model.encoder), "__call__", recorded)
    prompt = PROMPTS[0]
    with _setting(model, bucket_shapes=True):
        results = model.transcribe(_paths(CLIPS), decoding="greedy", batch_size=8,
                                   **_options(prompt))  # fmt: skip
    assert shapes == [(8, 384)]  # 5 clips of 308-371 frames
    for clip, result in zip(CLIPS, results, strict=True):
        assert [t.id for t in result.tokens] == META["transcribe_batched"][prompt][clip]["ids"]


@pytest.mark.parametrize("section", ["beam", "beam_length_penalty_1"])
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_beam_nbest_equals_nemo_single_clip(model, section, batched):
    """Every beam in NeMo's slot order, ids and scores, for alpha 0 and 1."""
    settings = META[section]["settings"]
    tok = model.tokenizer
    for prompt in PROMPTS:
        ids = META["prompts"][prompt]["ids"]
        groups = [CLIPS] if batched else [[c] for c in CLIPS]
        for clips in groups:
            memory, lengths = _nemo_encoded(clips)
            found = beam_search(
                model.decoder, memory, lengths, [ids] * len(clips), eos_id=tok.eos_id,
                pad_id=tok.pad_id, beam_size=settings["beam_size"],
                length_penalty=settings["length_penalty_used"],
                max_delta=settings["max_generation_delta"],
            )  # fmt: skip
            for clip, result in zip(clips, found, strict=True):
                expected = META[section]["nbest"][prompt][clip]
                assert [b[0] for b in result.beams] == [e["ids"] for e in expected], (prompt, clip)
                assert [tok.decode(b[0]) for b in result.beams] == [e["text"] for e in expected]
                np.testing.assert_allclose(
                    [b[1] for b in result.beams], [e["score"] for e in expected], rtol=0, atol=1e-3
                )
                best = META[section]["transcribe"][prompt][clip]
                assert result.tokens == best["ids"], (prompt, clip)


@pytest.mark.parametrize("section", ["beam", "beam_length_penalty_1"])
@pytest.mark.parametrize("batch_size", [1, len(CLIPS)])
def test_transcribe_beam_best_equals_nemo_single_clip(model, section, batch_size):
    settings = META[section]["settings"]
    with _setting(model, length_penalty=settings["length_penalty_used"]):
        for prompt in PROMPTS:
            results = model.transcribe(
                _paths(CLIPS), decoding="beam", beam_size=settings["beam_size"],
                batch_size=batch_size, **_options(prompt),
            )  # fmt: skip
            for clip, result in zip(CLIPS, results, strict=True):
                expected = META[section]["transcribe"][prompt][clip]
                assert [t.id for t in result.tokens] == expected["ids"], (prompt, clip)
                assert result.text == expected["text"], (prompt, clip)


def test_canary_v1_prompt_format_equals_nemo(model):
    """The same weights with canary-1b's `canary` prompt format.

    NeMo's `transcribe` without a `timestamps` argument keeps the text's leading space
    (CANARY.md, "Quirks"); ours is always stripped, as NeMo's is when it is given.
    """
    v1 = META["canary_v1_format"]
    with _setting(model, prompt_format="canary"):
        for prompt in PROMPTS:
            kwargs = v1["prompts"][prompt]["transcribe_kwargs"]
            options = {**_options(prompt), "task": kwargs["task"]}
            assert model.prompt(canary.PromptOptions(**options)) == v1["prompts"][prompt]["ids"]
            results = model.transcribe(_paths(CLIPS), decoding="greedy", batch_size=1, **options)
            for clip, result in zip(CLIPS, results, strict=True):
                expected = v1["transcribe"][prompt][clip]
                assert [t.id for t in result.tokens] == expected["ids"], (prompt, clip)
                assert result.text == expected["text"].strip(), (prompt, clip)


# --- the command -----------------------------------------------------------------------


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


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("canary: error: ")
    return lines[0]


def test_cli_json_equals_nemo_transcribe(tmp_path):
    prompt = "en_de_ast_pnc"
    kwargs = META["prompts"][prompt]["transcribe_kwargs"]
    result = _canary(*_paths(CLIPS), "--model", str(MODELS / "canary.nemo"), "--source-lang",
                     kwargs["source_lang"], "--target-lang", kwargs["target_lang"],
                     "--output-format", "json", "--batch-size", "3", cache=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    for clip, output in zip(CLIPS, outputs, strict=True):
        expected = META["transcribe"][prompt][clip]
        assert output["text"] == expected["text"], clip
        assert [t["id"] for t in output["tokens"]] == expected["ids"], clip
        assert output["language"] == kwargs["target_lang"]


@pytest.mark.parametrize("languages", [("fr", None), ("en", "fr")], ids=["source", "target"])
def test_cli_unsupported_language_lists_the_supported_ones(tmp_path, languages):
    source, target = languages
    args = [str(AUDIO / CLIPS[0]), "--model", str(MODELS / "canary.nemo"), "--source-lang", source]
    if target:
        args += ["--target-lang", target]
    out_dir = tmp_path / "out"
    line = _one_line_error(_canary(*args, "--output-dir", str(out_dir), cache=tmp_path))
    assert "'fr'" in line
    assert "supported: " + ", ".join(sorted(META["tokenizer"]["language_tokens"])) in line
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_cli_parakeet_checkpoint_points_to_parakeet(tmp_path):
    line = _one_line_error(
        _canary(str(AUDIO / CLIPS[0]), "--model", str(MODELS / "tdt.nemo"), cache=tmp_path)
    )
    assert "`parakeet`" in line


def test_cli_all_formats_to_a_directory_with_a_template(tmp_path):
    out_dir = tmp_path / "out"
    clips = CLIPS[:2]
    command = [sys.executable, "-m", "nemo_mlx_canary.cli", _paths(clips)[0], "-", "--model",
               str(MODELS / "canary.nemo"), "--output-format", "all", "--output-dir", str(out_dir),
               "--output-template", "{index}-{stem}.{ext}", "--cache-dir", str(tmp_path), "--quiet"]  # fmt: skip
    result = subprocess.run(command, input=(AUDIO / clips[1]).read_bytes(), capture_output=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (b"", b"")
    formats = ("json", "srt", "tsv", "txt", "vtt")
    expected = [f"0-{_stem(clips[0])}.{f}" for f in formats] + [f"1-stdin.{f}" for f in formats]
    assert sorted(p.name for p in out_dir.iterdir()) == expected
    for name, clip in ((f"0-{_stem(clips[0])}", clips[0]), ("1-stdin", clips[1])):
        text = META["transcribe"]["en_asr_pnc"][clip]["text"]
        assert json.loads((out_dir / f"{name}.json").read_text())["text"] == text
        assert (out_dir / f"{name}.txt").read_text() == text.strip() + "\n"


def test_cli_several_formats_need_a_directory(tmp_path):
    line = _one_line_error(_canary(str(AUDIO / CLIPS[0]), "--output-format", "all", cache=tmp_path))
    assert line == "canary: error: --output-format all needs --output-dir"
