"""A tiny random-weight NeMo Canary (AED) model, and NeMo's own outputs for it on the test clips.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_canary_fixture.py
    # on the project machine: /work/ref-venv/bin/python tests/reference/make_canary_fixture.py

It runs in well under a minute on two CPU cores (NeMo 3.0.0, torch 2.13 CPU). It builds an
`EncDecMultiTaskModel` with NeMo's own classes from a config dict in NVIDIA's section layout,
with canary-1b-flash's prompt format (`canary2`) and tokenizer composition: a `CanaryTokenizer`
(aggregate) of a special-token SentencePiece model made by
`CanaryTokenizer.build_special_tokenizer` and English and German BPE models trained here on
made-up cased, punctuated sentences. FastConformer encoder (128 mels, dw_striding x8, rel_pos,
d 64, 2 layers, 4 heads), a Linear projection to the decoder width (as canary-180m-flash), a
pre-LN Transformer decoder (hidden 80, 2 layers, 4 heads, inner 320, fixed sinusoidal
positions, 39 positions) and a TokenClassifier head tied to the token embedding.

A random decoder emits one token again and again, or stops at once. Before saving, a few
numbers are set from the model's own activations (`make_outputs_varied`) and the script asserts
that greedy outputs then end with EOS after 5 to 30 tokens (one reaches the length cap instead)
and differ between clips and prompts (`check_varied`). References come from the model restored from the saved
`.nemo`, in eval mode, on the speech clips as NeMo's loader reads them (reusing
`make_model_fixtures.py`'s helpers).

Writes to tests/fixtures/models/ (all three files or none):
- `canary.nemo`: the model, from `save_to`;
- `canary.npz`: float32 arrays: `features/<stem>` (T, 128) for the first clip,
  `encoded/<stem>` (T', 64) encoder output and `encoder_states/<stem>` (T', 80) after
  `encoder_decoder_proj` for every clip, and `greedy_logits/<prompt>/<stem>` (steps, V) the
  decoder's logits at every greedy step (full padded vocabulary row) for the first two clips;
- `canary.json`: versions, command, config, the decoder and tokenizer layout, the weight
  choices, per prompt the prompt ids, per clip and prompt greedy and beam results (single and
  batched, through `transcribe` and through the decoding object), the same prompts in the older
  `canary` format, and statistics. tests/reference/CANARY.md describes the keys and what an
  implementation has to match.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import random
import shutil
import tarfile
import tempfile
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import make_model_fixtures as base  # tests/reference/, on sys.path when run as a script
import numpy as np
import sentencepiece
import torch
from nemo.collections.asr.models import ASRModel, EncDecMultiTaskModel
from nemo.collections.asr.modules.transformer import transformer_generators
from nemo.collections.asr.parts.submodules.multitask_decoding import MultiTaskDecodingConfig
from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer
from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
from omegaconf import OmegaConf, open_dict

OUT = base.OUT
COMMAND = "python tests/reference/make_canary_fixture.py"
NAME = "canary"
CLIPS = base.SPEECH_CLIPS  # the five speech clips, one per container format
LOGIT_CLIPS = 2  # clips whose per-step greedy logits go to the npz
FEATURE_CLIPS = 1  # clips whose preprocessor features go to the npz

SEED = base.SEED
PROMPT_FORMAT = "canary2"  # canary-1b-flash / canary-180m-flash
LANG_VOCAB = {"en": 128, "de": 128}
ENC_D_MODEL, DEC_HIDDEN = 64, 80  # they differ, so encoder_decoder_proj is a Linear (180m-flash)
MAX_SEQUENCE_LENGTH = 39  # decoder positions: prompt (9 tokens in canary2) + up to 30 generated
# Special tokens after CanaryTokenizer's six defaults (<|nospeech|> <pad> <|endoftext|>
# <|startoftranscript|> <|pnc|> <|nopnc|>): canary2's prompt slots, languages, the canary1 task
# tokens, and a few timestamp (frame) tokens.
SPECIAL_TOKENS = [
    "<|startofcontext|>",
    "<|emo:undefined|>",
    "<|emo:neutral|>",
    "<|emo:angry|>",
    "<|emo:happy|>",
    "<|emo:sad|>",
    "<|en|>",
    "<|de|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|itn|>",
    "<|noitn|>",
    "<|timestamp|>",
    "<|notimestamp|>",
    "<|diarize|>",
    "<|nodiarize|>",
    "<|spkchange|>",
    *[f"<|{i}|>" for i in range(16)],
]
# The prompts, as `transcribe(**slots)` takes them. canary2 has no task slot: translation is
# target_lang != source_lang. `task` is used by the older `canary` format only.
PROMPTS: dict[str, dict[str, str]] = {
    "en_asr_pnc": {"source_lang": "en", "target_lang": "en", "pnc": "yes", "task": "asr"},
    "en_asr_nopnc": {"source_lang": "en", "target_lang": "en", "pnc": "no", "task": "asr"},
    "en_de_ast_pnc": {"source_lang": "en", "target_lang": "de", "pnc": "yes", "task": "ast"},
}
V1_PROMPT_DEFAULTS = [
    {
        "role": "user",
        "slots": {
            "source_lang": "<|en|>",
            "target_lang": "<|en|>",
            "task": "<|transcribe|>",
            "pnc": "<|pnc|>",
        },
    }
]
BEAM_SIZE = 4
# A random decoder with a tied head repeats its input token: the residual stream carries the
# input's embedding to the output, where it meets the same row again. These factors break that
# (`make_outputs_varied`, step 3).
EMBEDDING_NORM_GAIN = -1.0  # times the embedding layer norm's weight and bias
SELF_ATTENTION_OUT_SCALE = 2.0  # times each self-attention out_projection weight
FFN_OUT_SCALE = 3.0  # times each feed-forward dense_out weight
LOGIT_STD = 3.0  # spread of the decoder's logits (how peaked its distributions are)
SUPPRESS = 4.0 * LOGIT_STD  # how far special tokens (but EOS) and padding rows are pushed down
EOS_SLOPE = 1.0  # EOS logit gained per decoding step (its row reads the step off the state)
RIDGE = 1e-2  # of the mean eigenvalue, regularising that readout
# greedy lengths before EOS: at least, and the median aimed at (second to reaching the cap once)
MIN_TOKENS, TARGET_TOKENS = 5, 14
MIN_EOS_MARGIN = 0.05  # least |logit margin - EOS bias| on any greedy step when choosing the bias

# ---------------------------------------------------------------------------------------------
# Tokenizers

_DE_WORDS = """der die das schnelle braune fuchs springt über den faulen hund sieben müde
seeleute zählten vierzig vögel am mittag bitte ruf stella an und sag ihr sie soll diese dinge
mitbringen neunhundert zwölf leute wählten dienstag eine warme brise wehte über ruhigen hafen
eins zwei drei vier fünf sechs acht zehn morgen abend fluss kleines haus grünes licht boot
norden süden bahnhof straße"""
_DE_FIRST = ["Der", "Die", "Das", "Bitte", "Sieben", "Neun", "Stella", "Am", "Eine", "Zehn"]
_DE_CLIPS = [
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Sieben müde Seeleute zählten vierzig Vögel am Mittag.",
    "Bitte ruf Stella an und sag ihr, sie soll diese Dinge mitbringen.",
    "Neunhundertzwölf Leute wählten am Dienstag.",
    "Eine warme Brise wehte über den ruhigen Hafen.",
]


def german_lines(rng: random.Random, count: int = 400) -> list[str]:
    words = _DE_WORDS.split()
    lines = list(_DE_CLIPS)
    for _ in range(count):
        sentence = [rng.choice(_DE_FIRST)] + [rng.choice(words) for _ in range(rng.randint(3, 10))]
        if len(sentence) > 5 and rng.random() < 0.4:
            sentence[rng.randint(2, len(sentence) - 2)] += ","
        lines.append(" ".join(sentence) + rng.choice([".", ".", ".", "?", "!"]))
    return lines


def train_tokenizers(directory: Path) -> dict[str, dict[str, str]]:
    """The special-token model and one BPE model per language; returns `tokenizer.langs`.

    Run from `directory` on relative paths, with SentencePiece's generator seeded: the models
    store their training arguments, and come out byte-identical on every run.
    """
    directory.mkdir(parents=True, exist_ok=True)
    corpora = {
        "en": base.corpus_lines(random.Random(SEED)),
        "de": german_lines(random.Random(SEED + 1)),
    }
    sentencepiece.set_random_generator_seed(SEED)
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        CanaryTokenizer.build_special_tokenizer(SPECIAL_TOKENS, "spl_tokens")
        for lang, lines in corpora.items():
            Path(lang).mkdir()
            Path(lang, "corpus.txt").write_text("\n".join(lines) + "\n")
            create_spt_model(
                f"{lang}/corpus.txt",
                vocab_size=LANG_VOCAB[lang],
                sample_size=-1,
                do_lower_case=False,
                tokenizer_type="bpe",
                output_dir=lang,
            )
    finally:
        os.chdir(cwd)
    # spl_tokens first: the aggregate's ids are offset in this (insertion) order
    return {
        lang: {"dir": str(directory / lang), "type": "bpe"} for lang in ("spl_tokens", "en", "de")
    }


# ---------------------------------------------------------------------------------------------
# Model config: NVIDIA's canary-*-flash section layout, tiny sizes


def model_config(langs: dict[str, dict[str, str]]) -> dict[str, Any]:
    decoding = OmegaConf.structured(MultiTaskDecodingConfig)
    decoding.strategy = "greedy"
    decoding.greedy.max_generation_delta = -1  # NeMo's default: up to max_sequence_length
    decoding.beam.beam_size = BEAM_SIZE
    decoder = {
        "max_sequence_length": MAX_SEQUENCE_LENGTH,
        "num_token_types": 0,
        "embedding_dropout": 0.1,  # NVIDIA's value; inactive in eval mode
        "learn_positional_encodings": False,
        "hidden_size": DEC_HIDDEN,
        "inner_size": 4 * DEC_HIDDEN,
        "num_layers": 2,
        "num_attention_heads": 4,
        "ffn_dropout": 0.1,
        "attn_score_dropout": 0.1,
        "attn_layer_dropout": 0.1,
        "hidden_act": "relu",
        "pre_ln": True,
        "vocab_size": None,  # set by the model: 8 * ceil(tokenizer vocab / 8)
    }
    return {
        "sample_rate": 16000,
        "prompt_format": PROMPT_FORMAT,
        "prompt_defaults": [
            {
                "role": "user",
                "slots": {
                    "decodercontext": "",
                    "source_lang": "<|en|>",
                    "target_lang": "<|en|>",
                    "emotion": "<|emo:undefined|>",
                    "pnc": "<|pnc|>",
                    "itn": "<|noitn|>",
                    "diarize": "<|nodiarize|>",
                    "timestamp": "<|notimestamp|>",
                },
            },
            {"role": "user_partial", "slots": {"decodercontext": ""}},
        ],
        "tokenizer": {
            "dir": None,
            "type": "agg",
            "langs": langs,
            "custom_tokenizer": {
                "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer"
            },
        },
        "model_defaults": {
            "asr_enc_hidden": ENC_D_MODEL,
            "lm_enc_hidden": DEC_HIDDEN,
            "lm_dec_hidden": DEC_HIDDEN,
        },
        "preprocessor": base.preprocessor_config(128),
        "encoder": base.encoder_config(128, d_model=ENC_D_MODEL, n_heads=4),
        "transf_encoder": {
            "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            "num_layers": 0,  # as in the flash models: no Transformer encoder
            "hidden_size": DEC_HIDDEN,
            "inner_size": 4 * DEC_HIDDEN,
            "num_attention_heads": 4,
            "ffn_dropout": 0.1,
            "pre_ln": True,
            "pre_ln_final_layer_norm": True,
            "mask_future": False,
        },
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None,
            "pretrained": False,
            "encoder": None,
            "pre_ln_final_layer_norm": True,
            "config_dict": decoder,
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1,
            "activation": "relu",
            "log_softmax": True,
            "hidden_size": DEC_HIDDEN,
            "num_classes": None,
            "dropout": 0.0,
            "use_transformer_init": True,
        },
        "loss": {
            "_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
            "label_smoothing": 0.0,
            "pad_id": None,
        },
        "decoding": OmegaConf.to_container(decoding),
        "optim": None,
    }


# ---------------------------------------------------------------------------------------------
# Running NeMo


@torch.no_grad()
def encoder_states(model: EncDecMultiTaskModel, signals: list[np.ndarray]) -> dict[str, Any]:
    """Preprocessor, encoder and projection, as `EncDecMultiTaskModel.forward` runs them."""
    signal, length = base.padded(signals)
    features, feature_len = model.preprocessor(input_signal=signal, length=length)
    encoded, encoded_len = model.encoder(audio_signal=features, length=feature_len)
    _, encoded_len2, states, mask = model(input_signal=signal, input_signal_length=length)
    assert torch.equal(encoded_len, encoded_len2)
    return {
        "features": features,
        "feature_len": feature_len,
        "encoded": encoded,
        "encoded_len": encoded_len,
        "states": states,
        "mask": mask,
    }


def prompt_ids(model: EncDecMultiTaskModel, slots: dict[str, str]) -> torch.Tensor:
    """The decoder input ids `transcribe(**slots)` builds: given slots over the defaults."""
    turns = model.prompt.get_default_dialog_slots()
    for turn in turns:
        if turn["role"] == "user":
            turn["slots"] = {**turn["slots"], **slots}
    turns = [t for t in turns if all(v is not None for v in t["slots"].values())]
    return model.prompt.encode_dialog(turns=turns)["context_ids"]


def transcribe_kwargs(model: EncDecMultiTaskModel, prompt: str) -> dict[str, Any]:
    """`transcribe`'s prompt keywords: canary2 has no task slot, and timestamps go off."""
    kwargs: dict[str, Any] = dict(PROMPTS[prompt])
    if model.prompt_format == "canary2":
        kwargs.pop("task")
        kwargs["timestamps"] = False
    return kwargs


def prompt_slots(model: EncDecMultiTaskModel, prompt: str) -> dict[str, str]:
    """The slots `transcribe(**transcribe_kwargs)` fills in (timestamps=False: 'no')."""
    slots = transcribe_kwargs(model, prompt)
    if slots.pop("timestamps", None) is False:
        slots["timestamp"] = "no"
    return slots


@contextmanager
def capture_head(model: EncDecMultiTaskModel):
    """Collect the output layer's input and output at every decoder step, (B, 1, H / V) each."""
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_module, inputs, output):
        steps.append((inputs[0][:, -1].detach().clone(), output[:, -1].detach().clone()))

    handle = model.log_softmax.mlp.layer0.register_forward_hook(hook)
    try:
        yield steps
    finally:
        handle.remove()


@contextmanager
def capture_prompts(model: EncDecMultiTaskModel):
    """Record the decoder_input_ids `transcribe` hands to the decoding object, per batch."""
    calls: list[torch.Tensor] = []
    original = model.decoding.decode_predictions_tensor

    def wrapper(*args, **kwargs):
        calls.append(kwargs["decoder_input_ids"].detach().clone())
        return original(*args, **kwargs)

    model.decoding.decode_predictions_tensor = wrapper
    try:
        yield calls
    finally:
        del model.decoding.decode_predictions_tensor


def hyp_record(hyp: Any, score: bool = False) -> dict[str, Any]:
    out = {"ids": base.to_jsonable(hyp.y_sequence), "text": hyp.text}
    if score:
        out["score"] = float(hyp.score)
    return out


@torch.no_grad()
def greedy_single(
    model: EncDecMultiTaskModel, states: dict[str, Any], prompt: torch.Tensor
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """NeMo's greedy decoding of one clip: the hypothesis, per-step logits and head inputs."""
    with capture_head(model) as steps:
        (hyp,) = model.decoding.decode_predictions_tensor(
            encoder_hidden_states=states["states"],
            encoder_input_mask=states["mask"],
            decoder_input_ids=prompt[None],
            return_hypotheses=True,
        )
    model.eval()  # NeMo's decoding leaves decoder and head in training mode
    hidden = torch.cat([h for h, _ in steps])
    logits = torch.cat([lg for _, lg in steps])
    return hyp_record(hyp), logits, hidden


@torch.no_grad()
def teacher_forced_logits(
    model: EncDecMultiTaskModel, states: dict[str, Any], prompt: torch.Tensor, ids: list[int]
) -> torch.Tensor:
    """Logits of the whole decoder run once on prompt + ids (no cache), (len(ids) + 1, V)."""
    tokens = torch.cat([prompt, torch.tensor(ids, dtype=torch.long)])[None]
    hidden = model.transf_decoder(
        input_ids=tokens,
        decoder_mask=torch.ones_like(tokens),
        encoder_embeddings=states["states"],
        encoder_mask=states["mask"],
    )
    with model.log_softmax.with_log_softmax_enabled(False) as head:
        logits = head(hidden_states=hidden)
    return logits[0, len(prompt) - 1 :]


def generation_cap(model: EncDecMultiTaskModel, prompt_len: int, frames: int) -> int:
    """Greedy steps G after a prompt of `prompt_len` tokens, for `frames` encoder frames.

    NeMo's `_prepare_for_search`: G = max_sequence_length - P, or with
    `max_generation_delta` >= 0, min(max_sequence_length, frames + delta) - P (`frames` is the
    padded batch's length; one clip alone here), with the current strategy's settings. Beam
    search allows one token more.
    """
    strategy = model.decoding.decoding
    generator = getattr(strategy, "greedy_search", None) or strategy.beam_search
    longest = generator.max_seq_length
    if generator.max_delta_len >= 0:
        longest = min(longest, frames + generator.max_delta_len)
    return longest - prompt_len


@torch.no_grad()
def log_prob_sum(
    model: EncDecMultiTaskModel, states: dict[str, Any], prompt: torch.Tensor, ids: list[int]
) -> float:
    """Sum of the token log-probs of a beam hypothesis, EOS included where it has one.

    A beam hypothesis either ended with EOS or runs to the cap (G + 1 tokens, the last never
    fed back): one teacher-forced pass on all but that last token gives every step.
    """
    cap = generation_cap(model, len(prompt), int(states["encoded_len"][0])) + 1
    full = ids if len(ids) == cap else [*ids, model.tokenizer.eos_id]
    logits = teacher_forced_logits(model, states, prompt, full[:-1])
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(log_probs[torch.arange(len(full)), torch.tensor(full)].sum())


def transcribe(
    model: EncDecMultiTaskModel, signals: list[np.ndarray], prompt: str, batch_size: int
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """NeMo's `transcribe` on the numpy clips: per clip ids and text; the prompt ids it used."""
    with capture_prompts(model) as calls:
        hyps = model.transcribe(
            signals,
            batch_size=batch_size,
            return_hypotheses=True,
            verbose=False,
            **transcribe_kwargs(model, prompt),
        )
    model.eval()  # `transcribe` leaves the decoder in training mode
    prompts = [row.tolist() for call in calls for row in call]
    return [hyp_record(h) for h in hyps], prompts


def set_prompt_format(model: EncDecMultiTaskModel, name: str, defaults: list[dict]) -> None:
    """`change_prompt` builds the formatter from the defaults already in the config (and
    stores the new ones after): the config gets them first."""
    with open_dict(model.cfg):
        model.cfg.prompt_defaults = defaults
    model.change_prompt(prompt_format=name, prompt_defaults=defaults)


def set_decoding(model: EncDecMultiTaskModel, strategy: str, **beam: Any) -> None:
    cfg = copy.deepcopy(model.cfg.decoding)
    with open_dict(cfg):
        cfg.strategy = strategy
        for key, value in beam.items():
            cfg.beam[key] = value
    model.change_decoding_strategy(cfg)


@torch.no_grad()
def beam_batched(
    model: EncDecMultiTaskModel, signals: list[np.ndarray], prompts: dict[str, Any]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The current beam strategy on all clips as one zero-padded batch: n-best per clip."""
    st = encoder_states(model, signals)
    result = {}
    for prompt in PROMPTS:
        ids = torch.tensor(prompts[prompt]["ids"])
        out = model.decoding.decode_predictions_tensor(
            encoder_hidden_states=st["states"],
            encoder_input_mask=st["mask"],
            decoder_input_ids=ids[None].repeat(len(signals), 1),
            return_hypotheses=True,
        )
        model.eval()
        result[prompt] = {
            clip: [hyp_record(h, score=True) for h in hyps]
            for clip, hyps in zip(CLIPS, out, strict=True)
        }
    return result


@contextmanager
def beam_mems_interleaved():
    """NeMo's beam search with one line changed, to show what makes batched runs differ.

    `BeamSearchSequenceGenerator._forward` (NeMo 3.0.0) copies the prompt's cached decoder
    states for the beams with `.repeat(beam_size, 1, 1)` (beam-major: row r holds item
    r % batch), while encoder states, masks, prefixes and scores are laid out item-major
    (row r is item r // beam_size). With `repeat_interleave` instead, a batch gives what each
    clip gives alone when the length penalty is 0; the script asserts that. (With a length
    penalty, the scores of finished hypotheses keep changing while any row of the batch runs:
    see CANARY.md.)
    """
    cls = transformer_generators.BeamSearchSequenceGenerator
    source = textwrap.dedent(inspect.getsource(cls._forward))
    old = "decoder_mems_list[j].repeat(self.beam_size, 1, 1)"
    assert source.count(old) == 1, "NeMo's beam search changed"
    namespace: dict[str, Any] = {}
    new = "decoder_mems_list[j].repeat_interleave(self.beam_size, 0)"
    exec(source.replace(old, new), vars(transformer_generators), namespace)
    original = cls._forward
    cls._forward = namespace["_forward"]
    try:
        yield
    finally:
        cls._forward = original


# ---------------------------------------------------------------------------------------------
# Making a random decoder's outputs varied


def output_rows(model: EncDecMultiTaskModel) -> dict[str, torch.Tensor]:
    """Masks over the head's (padded) rows: text pieces, EOS, other specials, padding."""
    tok = model.tokenizer
    rows = model.log_softmax.mlp.layer0.weight.shape[0]
    spl = torch.zeros(rows, dtype=torch.bool)
    if hasattr(tok, "tokenizers_dict"):  # aggregate: the whole spl_tokens range
        spl[: len(tok.tokenizers_dict["spl_tokens"].vocab)] = True
    else:  # one model: its <unk>, <pad> and <|...|> pieces
        for i, piece in enumerate(tok.vocab):
            spl[i] = piece in ("<unk>", "<pad>") or (
                piece.startswith("<|") and piece.endswith("|>")
            )
    padding = torch.arange(rows) >= tok.vocab_size
    eos = torch.zeros(rows, dtype=torch.bool)
    eos[tok.eos_id] = True
    return {"text": ~spl & ~padding, "eos": eos, "special": spl & ~eos, "padding": padding}


@torch.no_grad()
def greedy_paths(
    model: EncDecMultiTaskModel, states: list[dict[str, Any]]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Greedy runs on every clip and prompt: (head inputs, logits) per step, EOS as it is."""
    paths = []
    for prompt in PROMPTS:
        ids = prompt_ids(model, prompt_slots(model, prompt))
        for st in states:
            _, logits, hidden = greedy_single(model, st, ids)
            paths.append((hidden, logits))
    return paths


def choose_eos_bias(margins: list[torch.Tensor], cap: int | list[int]) -> tuple[float, list[int]]:
    """An EOS bias and the greedy lengths it gives, from runs with EOS switched off.

    Up to the step where EOS first wins, a greedy path is the same whatever EOS's bias, so the
    lengths follow from the runs: with bias c, EOS wins at the first step t where
    `max(other logits) - EOS logit (no bias) < c`. Candidates lie halfway between margins; the
    chosen one keeps every length >= MIN_TOKENS and its median near TARGET_TOKENS, prefers a
    path or two that reach the length cap without EOS, and keeps the decision clear on every
    step up to EOS (>= MIN_EOS_MARGIN).
    """
    flat = torch.cat(margins).sort().values
    candidates = ((flat[1:] + flat[:-1]) / 2).tolist()
    best = None
    for c in candidates:
        lengths, clear = [], True
        for m in margins:
            hit = (m < c).nonzero()
            t = int(hit[0]) if len(hit) else len(m)
            lengths.append(t)
            if (m[: t + 1] - c).abs().min() < MIN_EOS_MARGIN:
                clear = False
        if not clear or min(lengths) < MIN_TOKENS:
            continue
        caps = cap if isinstance(cap, list) else [cap] * len(lengths)
        at_cap = sum(n >= c for n, c in zip(lengths, caps, strict=True))
        key = (not 1 <= at_cap <= 3, abs(float(np.median(lengths)) - TARGET_TOKENS))
        if best is None or key < best[0]:
            best = (key, c, lengths)
    assert best is not None, "no EOS bias gives the wanted lengths"
    return best[1], best[2]


@torch.no_grad()
def make_outputs_varied(model: EncDecMultiTaskModel, signals: list[np.ndarray]) -> dict[str, Any]:
    """Set a few numbers from the model's own activations so that greedy outputs vary.

    1. centre the encoder's subsampling output (`make_model_fixtures.centre_pre_encode`);
    2. standardise `encoder_decoder_proj`'s outputs over the clips' frames (with equal widths
       it is an Identity: the encoder's last layer norm instead), so that the audio counts in
       cross-attention as much as the prompt and history do;
    3. decoder: the embedding layer norm's gain times EMBEDDING_NORM_GAIN (-1: the input
       token's own row now counts against it), self-attention and feed-forward outputs scaled
       up (SELF_ATTENTION_OUT_SCALE, FFN_OUT_SCALE), so that history and prompt count;
    4. the head's weight is the token embedding (tied) and stays; its bias centres every
       token's logit over the decoder states of greedy runs, and the final layer norm's scale
       gives the logits a spread of LOGIT_STD (two rounds, as the paths move);
    5. special tokens but EOS, and the rows past the tokenizer's vocabulary, get SUPPRESS
       less: they never win (a padding row would crash NeMo's detokenizer);
    6. EOS's row (weight, tied to its embedding, which only ever follows EOS and so never
       changes an output) becomes EOS_SLOPE times a least-squares readout of the step number
       from the decoder state, so that EOS grows likelier as the output grows, and its bias
       is set by `choose_eos_bias`.
    Returns the chosen numbers.
    """
    base.centre_pre_encode(model, signals)
    proj = model.encoder_decoder_proj
    frames = []
    for x in signals:
        st = encoder_states(model, [x])
        frames.append(st["states"][0])
    # statistics in float64: float32 BLAS / LAPACK results can differ in the last bits between
    # processes (MKL), and the npz is meant to come out byte-identical
    out = torch.cat(frames).double()
    mean, std = out.mean(0), out.std(0) + 1e-3
    if not isinstance(proj, torch.nn.Linear):  # equal widths: an Identity; the encoder's last
        proj = model.encoder.layers[-1].norm_out  # layer norm gives the same affine map
    proj.weight.copy_(proj.weight.double() / (std[:, None] if proj.weight.ndim == 2 else std))
    proj.bias.copy_((proj.bias.double() - mean) / std)
    states = [encoder_states(model, [x]) for x in signals]

    embedding_norm = model.transf_decoder.embedding.layer_norm
    embedding_norm.weight *= EMBEDDING_NORM_GAIN
    embedding_norm.bias *= EMBEDDING_NORM_GAIN
    for layer in model.transf_decoder.decoder.layers:
        layer.first_sub_layer.out_projection.weight *= SELF_ATTENTION_OUT_SCALE
        layer.third_sub_layer.dense_out.weight *= FFN_OUT_SCALE

    head = model.log_softmax.mlp.layer0
    norm = model.transf_decoder.decoder.final_layer_norm
    rows = output_rows(model)
    off = rows["eos"] | rows["special"] | rows["padding"]
    centre = torch.zeros_like(head.bias, dtype=torch.float64)
    scale = 1.0
    for _ in range(2):  # EOS and specials off, to sample long paths
        head.bias.copy_(centre)
        head.bias[off] = -1e4
        hidden = torch.cat([h for h, _ in greedy_paths(model, states)]).double()
        logits = hidden @ head.weight.double().T  # without bias
        step_scale = LOGIT_STD / float((logits - logits.mean(0))[:, rows["text"]].std())
        norm.weight *= step_scale
        norm.bias *= step_scale
        scale *= step_scale
        centre = -logits.mean(0) * step_scale
    head.bias.copy_(centre)
    head.bias[rows["special"] | rows["padding"]] -= SUPPRESS
    head.bias[rows["eos"]] = -1e4  # still off: the paths up to where EOS would win
    paths = [(h.double(), lg) for h, lg in greedy_paths(model, states)]
    eos = model.tokenizer.eos_id
    # EOS's row (tied: also its input embedding, which only ever follows EOS) reads the step
    # number off the decoder state, least squares over the paths, EOS_SLOPE logits per step
    hidden = torch.cat([h for h, _ in paths])
    steps = torch.cat([torch.arange(len(h), dtype=torch.float64) for h, _ in paths])
    centred, steps = hidden - hidden.mean(0), steps - steps.mean()
    # ridge: the states after the final layer norm span fewer directions than they have
    # dimensions, and a plain solution would be a huge row (a decoder that amplifies rounding)
    gram = centred.T @ centred
    ridge = RIDGE * float(gram.trace()) / len(gram)
    w = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype), centred.T @ steps)
    fit = 1 - float(((centred @ w - steps) ** 2).mean() / (steps**2).mean())
    head.weight[eos] = EOS_SLOPE * w
    weight, bias = head.weight.double(), head.bias.double()
    margins = []
    for hidden, _ in paths:
        logits = hidden @ weight.T + bias
        other = logits.clone()
        other[:, eos] = -math.inf
        margins.append(other.max(-1).values - (logits[:, eos] - bias[eos]))
    # each path's step limit (paths run prompt by prompt, clip by clip: greedy_paths)
    caps = [
        generation_cap(
            model, len(prompt_ids(model, prompt_slots(model, p))), int(st["encoded_len"][0])
        )
        for p in PROMPTS
        for st in states
    ]
    cap = caps[0] if len(set(caps)) == 1 else caps
    bias, lengths = choose_eos_bias(margins, cap)
    head.bias[eos] = bias
    return {
        "pre_encode_centred": True,
        "encoder_decoder_proj_standardised": True,
        "embedding_layer_norm_gain": EMBEDDING_NORM_GAIN,
        "self_attention_out_projection_scale": SELF_ATTENTION_OUT_SCALE,
        "ffn_dense_out_scale": FFN_OUT_SCALE,
        "logit_std": LOGIT_STD,
        "final_layer_norm_scale": scale,
        "special_and_padding_rows_suppressed_by": SUPPRESS,
        "eos_row": f"{EOS_SLOPE} x ridge step-number readout (r2 {fit:.3f}, |row| {float(w.norm()):.2f},"
        f" median |row| {float(weight.norm(dim=1).median()):.2f})",
        "eos_bias": bias,
        "expected_greedy_lengths": lengths,
        "length_cap": cap,
    }


# ---------------------------------------------------------------------------------------------
# Checks and statistics


def greedy_stats(greedy: dict[str, dict[str, Any]], cap: int, logits: list[np.ndarray]) -> dict:
    hyps = [h for per_clip in greedy.values() for h in per_clip.values()]
    runs = []
    for h in hyps:
        run, longest = 1, 1
        for a, b in zip(h["ids"], h["ids"][1:], strict=False):
            run = run + 1 if a == b else 1
            longest = max(longest, run)
        runs.append(longest)
    top2 = [np.sort(lg, -1)[:, -2:] for lg in logits]
    return {
        "tokens_per_output": {p: [len(h["ids"]) for h in c.values()] for p, c in greedy.items()},
        "outputs_ending_at_cap": sum(len(h["ids"]) >= cap for h in hyps),
        "distinct_ids": len({t for h in hyps for t in h["ids"]}),
        "distinct_sequences": len({tuple(h["ids"]) for h in hyps}),
        "outputs": len(hyps),
        "longest_repeat_run": max(runs),
        "min_top2_logit_gap": float(min((t[:, 1] - t[:, 0]).min() for t in top2)),
    }


def check_varied(meta: dict[str, Any]) -> None:
    s = meta["stats"]["greedy"]
    assert s["distinct_sequences"] == s["outputs"], s
    assert s["distinct_ids"] >= 30, s
    assert s["longest_repeat_run"] <= 3, s
    lengths = [n for ns in s["tokens_per_output"].values() for n in ns]
    assert min(lengths) >= MIN_TOKENS, s
    assert max(lengths) <= meta["weight_choices"]["length_cap"], s
    assert s["outputs_ending_at_cap"] < len(lengths) // 2, s
    assert s["min_top2_logit_gap"] > 5e-4, s  # every greedy argmax clear of rounding
    rows = meta["tokenizer"]
    specials = set(range(rows["sub_tokenizers"]["spl_tokens"]["vocab_size"])) - {rows["eos_id"]}
    for per_clip in meta["greedy"].values():
        for h in per_clip.values():
            assert not specials & set(h["ids"]), h
            assert max(h["ids"]) < rows["vocab_size"], h
    assert meta["stats"]["beam"]["best_differs_from_greedy"] > 0, meta["stats"]["beam"]


# ---------------------------------------------------------------------------------------------
# Layout records


def tokenizer_layout(model: EncDecMultiTaskModel) -> dict[str, Any]:
    tok = model.tokenizer
    sub = {
        lang: {
            "offset": tok.token_id_offset[lang],
            "vocab_size": len(t.vocab),
            "class": f"{type(t).__module__}.{type(t).__name__}",
            "unk_piece_id": t.tokenizer.unk_id(),
        }
        for lang, t in tok.tokenizers_dict.items()
    }
    special = dict(sorted(tok.special_tokens.items(), key=lambda kv: kv[1]))
    return {
        "class": f"{type(tok).__module__}.{type(tok).__name__}",
        "vocab_size": tok.vocab_size,
        "decoder_vocab_size": model.log_softmax.mlp.layer0.weight.shape[0],
        "sub_tokenizers": sub,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "pad_id": tok.pad_id,
        "nospeech_id": tok.nospeech_id,
        "special_tokens": special,
        "language_tokens": {lang: special[f"<|{lang}|>"] for lang in LANG_VOCAB},
        "task_tokens": {k: special[k] for k in ("<|transcribe|>", "<|translate|>")},
        "pnc_tokens": {k: special[k] for k in ("<|pnc|>", "<|nopnc|>")},
        "itn_tokens": {k: special[k] for k in ("<|itn|>", "<|noitn|>")},
        "timestamp_flag_tokens": {k: special[k] for k in ("<|timestamp|>", "<|notimestamp|>")},
        "diarize_tokens": {k: special[k] for k in ("<|diarize|>", "<|nodiarize|>")},
        "timestamp_frame_tokens": {k: v for k, v in special.items() if k[2:-2].isdigit()},
        "vocabulary": list(tok.vocab),
    }


def tokenizer_examples(model: EncDecMultiTaskModel) -> dict[str, Any]:
    """NeMo's encode (per language) and decode (any ids) on a few strings and id lists."""
    tok = model.tokenizer
    texts = {
        "en": ["The quick brown fox, please!", "Tuesday? Nine hundred.", "zebra Xylophone"],
        "de": ["Der schnelle Fuchs, bitte!", "Über die Straße?", "Qualle Jazz"],
    }
    encode = [
        {"lang": lang, "text": text, "ids": tok.text_to_ids(text, lang)}
        for lang, items in texts.items()
        for text in items
    ]
    for item in encode:
        item["ids_to_text"] = tok.ids_to_text(item["ids"])
    en, de = tok.token_id_offset["en"], tok.token_id_offset["de"]
    id_lists = [
        [en + 1, en + 2, en + 3, de + 4, de + 5],
        [tok.bos_id, en + 10, tok.eos_id],
        [en, de, 0],  # each sub-tokenizer's <unk>
        [tok.special_tokens["<|en|>"], en + 20, tok.special_tokens["<|7|>"]],
    ]
    decode = [{"ids": ids, "ids_to_text": tok.ids_to_text(ids)} for ids in id_lists]
    return {"encode": encode, "decode": decode}


def decoder_layout(model: EncDecMultiTaskModel) -> dict[str, Any]:
    cfg = OmegaConf.to_container(model.cfg.transf_decoder, resolve=True)
    emb = model.transf_decoder.embedding
    return {
        **cfg["config_dict"],
        "pre_ln_final_layer_norm": cfg["pre_ln_final_layer_norm"],
        "final_layer_norm": model.transf_decoder.decoder.final_layer_norm is not None,
        "layer_norm_eps": 1e-5,
        "positional_encoding": "fixed sinusoid (sin even dims, cos odd dims) / sqrt(hidden)"
        if not emb.learn_positional_encodings
        else "learned",
        "embedding_scale": 1.0,
        "attention_scale": "q and k each divided by head_dim ** 0.25",
        "mask_value": -10000.0,
        "head": OmegaConf.to_container(model.cfg.head, resolve=True),
        "head_tied_to_token_embedding": model.log_softmax.mlp.layer0.weight
        is model.transf_decoder.embedding.token_embedding.weight,
        "encoder_decoder_proj": list(model.encoder_decoder_proj.weight.shape[::-1])
        if isinstance(model.encoder_decoder_proj, torch.nn.Linear)
        else None,
        "transf_encoder_layers": model.cfg.transf_encoder.num_layers,
    }


def state_dict_shapes(model: EncDecMultiTaskModel) -> dict[str, list[int]]:
    """Every state_dict entry outside the audio encoder and preprocessor, with its shape."""
    return {
        k: list(v.shape)
        for k, v in model.state_dict().items()
        if not k.startswith(("encoder.", "preprocessor."))
    }


def archive_members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


# ---------------------------------------------------------------------------------------------
# References


def differences(single: dict[str, dict], batched: dict[str, dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for prompt, per_clip in single.items():
        for clip, hyp in per_clip.items():
            fields = [
                k for k in hyp if k in batched[prompt][clip] and hyp[k] != batched[prompt][clip][k]
            ]
            if fields:
                out[f"{prompt}/{clip}"] = fields
    return out


@torch.no_grad()
def clip_encodings(
    model: EncDecMultiTaskModel,
    signals: dict[str, np.ndarray],
    names: list[str],
    feature_clips: int,
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, dict[str, Any]]]:
    """Each clip alone through the preprocessor, encoder and projection: the npz arrays
    (features of the first `feature_clips` clips, encoder output, decoder-side states), the
    clips' lengths for the JSON, and NeMo's states to decode from."""
    arrays: dict[str, np.ndarray] = {}
    clips: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    for i, clip in enumerate(names):
        stem = Path(clip).stem
        st = states[clip] = encoder_states(model, [signals[clip]])
        t = int(st["encoded_len"][0])
        if i < feature_clips:
            arrays[f"features/{stem}"] = st["features"][0].T.numpy()
        arrays[f"encoded/{stem}"] = st["encoded"][0, :, :t].T.numpy()
        arrays[f"encoder_states/{stem}"] = st["states"][0, :t].numpy()
        clips[clip] = {
            "num_samples": len(signals[clip]),
            "feature_frames": st["features"].shape[-1],
            "feature_length": int(st["feature_len"][0]),
            "encoded_length": t,
        }
    return arrays, clips, states


def references(
    model: EncDecMultiTaskModel, signals: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, clips, states = clip_encodings(model, signals, CLIPS, FEATURE_CLIPS)

    prompts: dict[str, Any] = {}
    greedy: dict[str, dict[str, Any]] = {}
    all_logits = []
    teacher_diff = 0.0
    for prompt in PROMPTS:
        ids = prompt_ids(model, prompt_slots(model, prompt))
        prompts[prompt] = {
            "transcribe_kwargs": transcribe_kwargs(model, prompt),
            "ids": ids.tolist(),
            "pieces": model.tokenizer.ids_to_tokens(ids.tolist()),
        }
        greedy[prompt] = {}
        for i, clip in enumerate(CLIPS):
            hyp, logits, _ = greedy_single(model, states[clip], ids)
            hyp["steps"] = len(logits)
            hyp["ended_with_eos"] = int(logits[-1].argmax()) == model.tokenizer.eos_id
            greedy[prompt][clip] = hyp
            all_logits.append(logits.numpy())
            if i < LOGIT_CLIPS:
                arrays[f"greedy_logits/{prompt}/{Path(clip).stem}"] = logits.numpy()
                forced = teacher_forced_logits(model, states[clip], ids, hyp["ids"])
                teacher_diff = max(
                    teacher_diff, float((forced[: len(logits)] - logits).abs().max())
                )

    meta: dict[str, Any] = {"clips": clips, "prompts": prompts, "greedy": greedy}
    meta["greedy_teacher_forced_max_abs_logit_diff"] = teacher_diff
    listed = [signals[c] for c in CLIPS]

    # transcribe, greedy (the saved strategy), batch 1 and all clips in one batch
    for key, batch in (("transcribe", 1), ("transcribe_batched", len(CLIPS))):
        meta[key] = {}
        for prompt in PROMPTS:
            hyps, used = transcribe(model, listed, prompt, batch)
            assert all(u == prompts[prompt]["ids"] for u in used), (used, prompts[prompt])
            meta[key][prompt] = dict(zip(CLIPS, hyps, strict=True))
    # the decoding object on one clip is what transcribe does; `transcribe(timestamps=False)`
    # on a model without a timestamps model sets `timestamps='no'`, a true value, and so runs
    # `process_aed_timestamp_outputs`, which strips the text
    for prompt in PROMPTS:
        for clip in CLIPS:
            t = meta["transcribe"][prompt][clip]
            g = greedy[prompt][clip]
            assert t["ids"] == g["ids"], (prompt, clip, t, g)
            assert t["text"] == g["text"].strip(), (prompt, clip, t, g)
    meta["transcribe_batched_differences"] = differences(
        meta["transcribe"], meta["transcribe_batched"]
    )

    # beam search: n-best lists with scores (decoding object), and transcribe's best
    beam_runs = {"beam": {}, "beam_length_penalty_1": {"length_penalty": 1.0}}
    for key, extra in beam_runs.items():
        set_decoding(model, "beam", beam_size=BEAM_SIZE, return_best_hypothesis=False, **extra)
        generator = model.decoding.decoding.beam_search
        beam_cfg = model.cfg.decoding.beam
        settings = {
            "beam_size": generator.beam_size,
            "length_penalty_used": generator.len_pen,  # read from `beam.length_penalty`, default 0
            "config_len_pen_ignored": beam_cfg.len_pen,  # AEDBeamInferConfig's field, never read
            "config_length_penalty": beam_cfg.get("length_penalty"),
            "max_generation_delta": generator.max_delta_len,
            "return_best_hypothesis_for_nbest": False,
        }
        nbest: dict[str, Any] = {}
        for prompt in PROMPTS:
            ids = torch.tensor(prompts[prompt]["ids"])
            nbest[prompt] = {}
            for clip in CLIPS:
                st = states[clip]
                (hyps,) = model.decoding.decode_predictions_tensor(
                    encoder_hidden_states=st["states"],
                    encoder_input_mask=st["mask"],
                    decoder_input_ids=ids[None],
                    return_hypotheses=True,
                )
                model.eval()
                nbest[prompt][clip] = [hyp_record(h, score=True) for h in hyps]
        batched_nbest = beam_batched(model, listed, prompts)
        with beam_mems_interleaved():
            fixed_nbest = beam_batched(model, listed, prompts)
        record = {"settings": settings, "nbest": nbest, "nbest_batched": batched_nbest}
        for name, other in (
            ("nbest_batched", batched_nbest),
            ("nbest_batched_mems_fixed", fixed_nbest),
        ):
            record[f"{name}_max_abs_score_diff"] = max(
                abs(a["score"] - b["score"])
                for p in PROMPTS
                for c in CLIPS
                for a, b in zip(nbest[p][c], other[p][c], strict=True)
            )
            record[f"{name}_id_differences"] = [
                f"{p}/{c}"
                for p in PROMPTS
                for c in CLIPS
                if [h["ids"] for h in nbest[p][c]] != [h["ids"] for h in other[p][c]]
            ]
        if not extra:  # length penalty 0; with one, scores also depend on the batch's steps
            assert not record["nbest_batched_mems_fixed_id_differences"], record
            assert record["nbest_batched_mems_fixed_max_abs_score_diff"] < 1e-3, record
        # with length penalty 0 a score is the sum of the log-probs; with one, often not
        gaps = [
            abs(
                h["score"]
                - log_prob_sum(model, states[c], torch.tensor(prompts[p]["ids"]), h["ids"])
            )
            for p in PROMPTS
            for c in CLIPS
            for h in nbest[p][c]
        ]
        record["nbest_score_minus_log_prob_sum_max_abs"] = max(gaps)
        record["nbest_scores_not_log_prob_sums"] = sum(g > 1e-3 for g in gaps)
        if not extra:
            assert record["nbest_score_minus_log_prob_sum_max_abs"] < 1e-3, record
        set_decoding(model, "beam", return_best_hypothesis=True)
        for tkey, batch in (("transcribe", 1), ("transcribe_batched", len(CLIPS))):
            record[tkey] = {}
            for prompt in PROMPTS:
                hyps, _ = transcribe(model, listed, prompt, batch)
                record[tkey][prompt] = dict(zip(CLIPS, hyps, strict=True))
        record["transcribe_batched_differences"] = differences(
            record["transcribe"], record["transcribe_batched"]
        )
        meta[key] = record
    set_decoding(model, "greedy")

    # the same weights and prompts in the older `canary` (canary-1b) prompt format
    saved_defaults = OmegaConf.to_container(model.cfg.prompt_defaults)
    set_prompt_format(model, "canary", V1_PROMPT_DEFAULTS)
    v1: dict[str, Any] = {"prompts": {}, "transcribe": {}}
    for prompt in PROMPTS:
        ids = prompt_ids(model, prompt_slots(model, prompt))
        v1["prompts"][prompt] = {
            "transcribe_kwargs": transcribe_kwargs(model, prompt),
            "ids": ids.tolist(),
            "pieces": model.tokenizer.ids_to_tokens(ids.tolist()),
        }
        hyps, used = transcribe(model, listed, prompt, 1)
        assert all(u == ids.tolist() for u in used)
        v1["transcribe"][prompt] = dict(zip(CLIPS, hyps, strict=True))
    set_prompt_format(model, PROMPT_FORMAT, saved_defaults)
    meta["canary_v1_format"] = v1

    beam = meta["beam"]
    meta["stats"] = {
        "greedy": greedy_stats(
            greedy,
            MAX_SEQUENCE_LENGTH - len(prompts["en_asr_pnc"]["ids"]),
            all_logits,
        ),
        "beam": {
            "best_differs_from_greedy": sum(
                beam["transcribe"][p][c]["ids"] != greedy[p][c]["ids"]
                for p in PROMPTS
                for c in CLIPS
            ),
            "nbest_first_differs_from_best": sum(
                beam["nbest"][p][c][0]["ids"] != beam["transcribe"][p][c]["ids"]
                for p in PROMPTS
                for c in CLIPS
            ),
            "length_penalty_1_nbest_first_differs_from_best": sum(
                meta["beam_length_penalty_1"]["nbest"][p][c][0]["ids"]
                != meta["beam_length_penalty_1"]["transcribe"][p][c]["ids"]
                for p in PROMPTS
                for c in CLIPS
            ),
            "beam_tokens_at_most": MAX_SEQUENCE_LENGTH - len(prompts["en_asr_pnc"]["ids"]) + 1,
            "longest_nbest_entry": max(
                len(h["ids"])
                for key in ("beam", "beam_length_penalty_1")
                for p in PROMPTS
                for c in CLIPS
                for h in meta[key]["nbest"][p][c]
            ),
            "length_penalty_1_best_differs": sum(
                meta["beam_length_penalty_1"]["transcribe"][p][c]["ids"]
                != beam["transcribe"][p][c]["ids"]
                for p in PROMPTS
                for c in CLIPS
            ),
        },
    }
    return arrays, meta


def main() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 - in case a NeMo code path draws from the global RNG
    signals = {clip: base.load_clip(clip) for clip in CLIPS}
    with tempfile.TemporaryDirectory() as tmp:
        langs = train_tokenizers(Path(tmp) / "tokenizers")
        provenance = {
            **base.made_by(COMMAND),
            "tokenizer_model_sha256": {
                lang: base.file_sha256(Path(t["dir"]) / "tokenizer.model")
                for lang, t in langs.items()
            },
        }
        torch.manual_seed(SEED)
        model = EncDecMultiTaskModel(cfg=OmegaConf.create(model_config(langs))).eval()
        chosen = make_outputs_varied(model, list(signals.values()))
        staging = Path(tmp) / "out"
        staging.mkdir()
        path = staging / f"{NAME}.nemo"
        model.save_to(str(path))
        restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
        assert isinstance(restored, EncDecMultiTaskModel)
        config = OmegaConf.to_container(restored.cfg, resolve=True, enum_to_str=True)
        arrays, refs = references(restored, signals)
        meta = {
            **provenance,
            "model_class": f"{type(restored).__module__}.{type(restored).__name__}",
            "prompt_format": PROMPT_FORMAT,
            "geometry": {
                "parameters": sum(p.numel() for p in restored.parameters()),
                "features": 128,
                "encoder_d_model": ENC_D_MODEL,
                "encoder_layers": 2,
                "subsampling_factor": 8,
                "decoder_hidden": DEC_HIDDEN,
            },
            "decoder": decoder_layout(restored),
            "tokenizer": tokenizer_layout(restored),
            "tokenizer_examples": tokenizer_examples(restored),
            "decoding": {
                "strategy": restored.cfg.decoding.strategy,
                "greedy": {
                    "max_generation_delta": restored.cfg.decoding.greedy.max_generation_delta,
                    "temperature": restored.cfg.decoding.greedy.temperature,
                    "max_sequence_length": MAX_SEQUENCE_LENGTH,
                    "generated_tokens_at_most": MAX_SEQUENCE_LENGTH
                    - len(refs["prompts"]["en_asr_pnc"]["ids"]),
                },
            },
            "weight_choices": chosen,
            **refs,
            "state_dict": state_dict_shapes(restored),
            "nemo_archive_members": archive_members(path),
            "config": config,
        }
        print(f"{NAME}: {path.stat().st_size / 1e6:.2f} MB .nemo, {meta['geometry']}")
        print(f"  weight choices: {json.dumps(chosen)}")
        print(f"  stats: {json.dumps(meta['stats'])}")
        print(f"  transcribe batched differs: {meta['transcribe_batched_differences']}")
        check_varied(meta)
        np.savez_compressed(staging / f"{NAME}.npz", **arrays)
        (staging / f"{NAME}.json").write_text(json.dumps(base.to_jsonable(meta), indent=1) + "\n")
        OUT.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            shutil.copyfile(path, OUT / path.name)
            print(f"wrote {OUT / path.name} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
