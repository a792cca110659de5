"""NVIDIA's Canary checkpoints, configuration for configuration, against NeMo itself.

One NeMo-made fixture per checkpoint family (tests/reference/make_canary_checkpoint_fixtures.py,
NeMo 3.0.0): canary-180m-flash, canary-1b-flash and canary-1b-v2, each built from that
checkpoint's published configuration with only sizes shrunk (the JSON's `config_sources` says
where each field came from, `shrunk` what was made smaller). The `.nemo` is converted with
`nemo-mlx-convert` and loaded with `canary.load`; every stage is held to NeMo's own output:
features (<= 1e-4), encoder and projected encoder states (relative error <= 1e-4), decoder
logits at every greedy step (relative error <= 1e-4), greedy and beam ids, `transcribe` with
the checkpoint's own decoding defaults (beam search of width 1, `max_generation_delta` 50),
the tokenizer (canary-1b-v2's unified one decoded as NeMo decodes it), the prompts, and the
flash models' timestamps. NeMo's batched runs differ from its single-clip ones where its
padded-length rule or its beam bookkeeping mixes clips (tests/reference/CANARY.md): ours are
held to the single-clip results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from canary_checks import check_transcript

import nemo_mlx_canary as canary
from mlx_audio_frontend import load_audio
from mlx_seq2seq_decoder import beam_search, greedy_search
from nemo_mlx_convert import convert_nemo

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHECKPOINTS_DIR, AUDIO = FIXTURES / "checkpoints", FIXTURES / "audio"
CHECKPOINTS = ["canary-180m-flash", "canary-1b-flash", "canary-1b-v2"]
YES = ("yes", "1", "true", "True")


class Checkpoint:
    def __init__(self, name: str, model: canary.Canary) -> None:
        self.name = name
        self.model = model
        self.meta = json.loads((CHECKPOINTS_DIR / f"{name}.json").read_text())
        with np.load(CHECKPOINTS_DIR / f"{name}.npz") as data:
            self.arrays = {key: data[key] for key in data.files}
        self.clips = list(self.meta["clips"])
        self.prompts = list(self.meta["prompts"])

    def options(self, prompt: str) -> dict:
        kwargs = self.meta["prompts"][prompt]["transcribe_kwargs"]
        return {"source_lang": kwargs["source_lang"], "target_lang": kwargs["target_lang"],
                "pnc": kwargs["pnc"] in YES}  # fmt: skip

    def encoded(self, clips: list[str]) -> tuple[mx.array, mx.array]:
        """NeMo's encoder outputs of `clips` as one zero-padded batch, with their lengths."""
        outs = [self.arrays[f"encoded/{Path(c).stem}"] for c in clips]
        batch = np.zeros((len(outs), max(map(len, outs)), outs[0].shape[1]), dtype=np.float32)
        for row, out in zip(batch, outs, strict=True):
            row[: len(out)] = out
        return mx.array(batch), mx.array([len(o) for o in outs])


@pytest.fixture(scope="module", params=CHECKPOINTS)
def ck(request, tmp_path_factory) -> Checkpoint:
    out = tmp_path_factory.mktemp(request.param) / "model"
    convert_nemo(CHECKPOINTS_DIR / f"{request.param}.nemo", out)
    return Checkpoint(request.param, canary.load(str(out), dtype="float32", verbose=False))


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def _paths(clips: list[str]) -> list[str]:
    return [str(AUDIO / c) for c in clips]


# --- the checkpoint's settings, tokenizer and prompts ------------------------------------


def test_settings_are_the_published_ones(ck):
    model, meta = ck.model, ck.meta
    saved = meta["saved_decoding"]
    assert model.prompt_format == meta["prompt_format"] == "canary2"
    assert saved["strategy"] == model.default_decoding == "beam"
    assert model.default_beam_size == saved["beam"]["beam_size"] == 1
    assert model.length_penalty == meta["beam"]["settings"]["length_penalty_used"] == 0.0
    assert model.max_deltas["beam"] == saved["beam"]["max_generation_delta"] == 50
    assert model.max_deltas["greedy"] == meta["greedy_settings"]["max_generation_delta"]
    config = model.decoder.config
    assert config.num_classes == meta["tokenizer"]["decoder_vocab_size"]
    assert config.max_sequence_length == meta["greedy_settings"]["max_sequence_length"]
    assert config.hidden_size == meta["geometry"]["decoder_hidden"]
    assert config.num_layers == meta["geometry"]["decoder_layers"]
    assert (config.pre_ln, config.final_layer_norm, config.learn_positional_encodings) == (
        True, True, False
    )  # fmt: skip
    # encoder_decoder_proj exists iff the widths differ (180m-flash: 512 -> 1024)
    assert (config.memory_size is not None) == meta["geometry"]["encoder_decoder_proj"]
    assert model.languages == meta["tokenizer"]["supported_languages"]
    frame_tokens = meta["timestamps"]["source"].startswith("decoder frame tokens")
    assert model.has_timestamps == frame_tokens


def test_tokenizer_equals_nemo(ck):
    tok, ref = ck.model.tokenizer, ck.meta["tokenizer"]
    assert tok.vocab_size == ref["vocab_size"]
    assert [tok.piece(i) for i in range(tok.vocab_size)] == ref["vocabulary"]
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (ref["bos_id"], ref["eos_id"], ref["pad_id"])
    for piece, token_id in ref["special_tokens"].items():
        if piece.startswith("<|") or piece == "<pad>":
            assert tok.special(piece) == token_id, piece


def test_tokenizer_examples_equal_nemo(ck):
    tok = ck.model.tokenizer
    for case in ck.meta["tokenizer_examples"]["encode"]:
        assert tok.encode(case["text"], case["lang"]) == case["ids"], case
        assert tok.decode(case["ids"]) == case["ids_to_text"], case
    for case in ck.meta["tokenizer_examples"]["decode"]:
        assert tok.decode(case["ids"]) == case["ids_to_text"], case


def test_prompt_ids_equal_nemo(ck):
    for prompt in ck.prompts:
        options = ck.options(prompt)
        assert ck.model.prompt(canary.PromptOptions(**options)) == ck.meta["prompts"][prompt]["ids"]
        if ck.model.has_timestamps:
            ids = ck.model.prompt(canary.PromptOptions(**options, timestamps=True))
            assert ids == ck.meta["timestamps_prompts"][prompt]["ids"], prompt


# --- front end, encoder, projection ----------------------------------------------------


def test_features_equal_nemo(ck):
    keys = [k for k in ck.arrays if k.startswith("features/")]
    assert keys
    for key in keys:
        clip = next(c for c in ck.clips if Path(c).stem == key.split("/")[1])
        features, length = ck.model.frontend(load_audio(AUDIO / clip))
        assert int(length[0]) == ck.meta["clips"][clip]["feature_length"]
        np.testing.assert_allclose(np.array(features[0]), ck.arrays[key], rtol=0, atol=1e-4)
        # the encoder on NeMo's own features
        encoded, out_len = ck.model.encoder(mx.array(ck.arrays[key])[None], length)
        assert int(out_len[0]) == ck.meta["clips"][clip]["encoded_length"]
        assert _rel(np.array(encoded[0]), ck.arrays[f"encoded/{Path(clip).stem}"]) <= 1e-4


def test_encoder_from_audio_batched_equals_nemo(ck):
    signals = [np.array(load_audio(AUDIO / c)) for c in ck.clips]
    batch = np.zeros((len(signals), max(map(len, signals))), dtype=np.float32)
    for row, signal in zip(batch, signals, strict=True):
        row[: len(signal)] = signal
    features, lengths = ck.model.frontend(batch, [len(s) for s in signals])
    encoded, out_len = ck.model.encoder(features, lengths)
    for i, clip in enumerate(ck.clips):
        expected = ck.arrays[f"encoded/{Path(clip).stem}"]
        assert int(out_len[i]) == len(expected)
        assert _rel(np.array(encoded[i, : len(expected)]), expected) <= 1e-4, clip


def test_encoder_states_equal_nemo(ck):
    """After `encoder_decoder_proj` (a Linear for 180m-flash, an Identity for the others)."""
    for clip in ck.clips:
        stem = Path(clip).stem
        states = mx.array(ck.arrays[f"encoded/{stem}"])
        if ck.meta["geometry"]["encoder_decoder_proj"]:
            states = ck.model.decoder.memory_proj(states)
        assert _rel(np.array(states), ck.arrays[f"encoder_states/{stem}"]) <= 1e-4, clip


# --- decoder ---------------------------------------------------------------------------


def test_logits_at_every_greedy_step_equal_nemo(ck):
    """Teacher-forced on NeMo's greedy ids: step k's logits against NeMo's step k."""
    keys = [k for k in ck.arrays if k.startswith("greedy_logits/")]
    assert len(keys) >= len(ck.prompts)
    worst = 0.0
    for key in keys:
        _, prompt, stem = key.split("/")
        clip = next(c for c in ck.clips if Path(c).stem == stem)
        reference, expected = ck.meta["greedy"][prompt][clip], ck.arrays[key]
        assert len(expected) == reference["steps"]
        memory, lengths = ck.encoded([clip])
        logits, cache = ck.model.decoder.start(memory, lengths, [ck.meta["prompts"][prompt]["ids"]])
        rows = [logits]
        for token in reference["ids"][: reference["steps"] - 1]:
            rows.append(ck.model.decoder.step(mx.array([token]), cache))
        for step, (ours, theirs) in enumerate(zip(rows, expected, strict=True)):
            error = _rel(np.array(ours[0]), theirs)
            worst = max(worst, error)
            assert error <= 1e-4, (key, step, error)
            assert int(np.argmax(theirs)) == int(mx.argmax(ours[0])), (key, step)
    assert worst > 0.0


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_greedy_on_nemo_encoder_output_equals_nemo(ck, batched):
    tok = ck.model.tokenizer
    for prompt in ck.prompts:
        ids = ck.meta["prompts"][prompt]["ids"]
        for clips in [ck.clips] if batched else [[c] for c in ck.clips]:
            memory, lengths = ck.encoded(clips)
            found = greedy_search(ck.model.decoder, memory, lengths, [ids] * len(clips),
                                  eos_id=tok.eos_id, max_delta=ck.model.max_deltas["greedy"])  # fmt: skip
            for clip, result in zip(clips, found, strict=True):
                expected = ck.meta["greedy"][prompt][clip]
                assert result.tokens == expected["ids"], (prompt, clip)
                assert result.finished == expected["ended_with_eos"], (prompt, clip)
                assert tok.decode(result.tokens) == expected["text"], (prompt, clip)


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_beam_nbest_equals_nemo_single_clip(ck, batched):
    settings = ck.meta["beam"]["settings"]
    tok = ck.model.tokenizer
    for prompt in ck.prompts:
        ids = ck.meta["prompts"][prompt]["ids"]
        for clips in [ck.clips] if batched else [[c] for c in ck.clips]:
            memory, lengths = ck.encoded(clips)
            found = beam_search(
                ck.model.decoder, memory, lengths, [ids] * len(clips), eos_id=tok.eos_id,
                pad_id=tok.pad_id, beam_size=settings["beam_size"],
                length_penalty=settings["length_penalty_used"],
                max_delta=settings["max_generation_delta"],
            )  # fmt: skip
            for clip, result in zip(clips, found, strict=True):
                expected = ck.meta["beam"]["nbest"][prompt][clip]
                assert [b[0] for b in result.beams] == [e["ids"] for e in expected], (prompt, clip)
                assert [tok.decode(b[0]) for b in result.beams] == [e["text"] for e in expected]
                np.testing.assert_allclose(
                    [b[1] for b in result.beams], [e["score"] for e in expected], rtol=0, atol=1e-3
                )


# --- transcribe, with the checkpoint's own decoding defaults --------------------------------


@pytest.mark.parametrize("batch_size", [1, 5])
def test_transcribe_default_decoding_equals_nemo(ck, batch_size):
    """No decoding arguments: the checkpoint's beam search of width 1, delta 50."""
    for prompt in ck.prompts:
        results = ck.model.transcribe(_paths(ck.clips), batch_size=batch_size, **ck.options(prompt))
        for clip, result in zip(ck.clips, results, strict=True):
            check_transcript(result, ck.meta["transcribe"][prompt][clip], where=(prompt, clip))


def test_transcribe_greedy_equals_nemo(ck):
    for prompt in ck.prompts:
        results = ck.model.transcribe(_paths(ck.clips), decoding="greedy", **ck.options(prompt))
        for clip, result in zip(ck.clips, results, strict=True):
            check_transcript(
                result, ck.meta["transcribe_greedy"][prompt][clip], where=(prompt, clip)
            )


def test_transcribe_other_clips_equals_nemo(ck):
    """Silence, an odd length, and a clip under 1 s (NeMo pads it to 1 s, half in front)."""
    for clip, expected in ck.meta["transcribe_other_clips"].items():
        result = ck.model.transcribe(str(AUDIO / clip), **ck.options("en_asr_pnc"))
        missing = max(0, 16000 - expected["num_samples"])
        check_transcript(result, expected, lead=(missing // 2) / 16000, where=clip)


def test_timestamps_equal_nemo_or_are_refused(ck):
    """Flash models: the decoder writes frame tokens, NeMo parses them into words and
    segments. canary-1b-v2: NeMo aligns with its auxiliary CTC model, which we do not run."""
    if not ck.model.has_timestamps:
        assert ck.meta["timestamps"]["timestamps_asr_model_restored"]
        with pytest.raises(canary.CanaryError, match="timestamps_asr_model"):
            ck.model.transcribe(_paths(ck.clips[:1]), timestamps=True)
        return
    assert ck.meta["stats"]["timestamps"]["outputs_with_words"] >= len(ck.clips)
    for prompt in ck.prompts:
        results = ck.model.transcribe(_paths(ck.clips), timestamps=True, **ck.options(prompt))
        for clip, result in zip(ck.clips, results, strict=True):
            check_transcript(
                result, ck.meta["transcribe_timestamps"][prompt][clip], where=(prompt, clip)
            )


def test_cli_json_equals_nemo(ck, tmp_path):
    prompt = "en_de_ast_pnc"
    options = ck.options(prompt)
    command = [sys.executable, "-m", "nemo_mlx_canary.cli", *_paths(ck.clips), "--model",
               str(CHECKPOINTS_DIR / f"{ck.name}.nemo"), "--source-lang", options["source_lang"],
               "--target-lang", options["target_lang"], "--output-format", "json",
               "--dtype", "float32", "--cache-dir", str(tmp_path), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for clip, line in zip(ck.clips, result.stdout.splitlines(), strict=True):
        output, expected = json.loads(line), ck.meta["transcribe"][prompt][clip]
        assert [t["id"] for t in output["tokens"]] == expected["ids"], clip
        assert output["text"] == expected["text"], clip
