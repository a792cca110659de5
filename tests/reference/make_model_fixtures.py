"""Tiny random-weight NeMo ASR models, and NeMo's own outputs for them on the test clips.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_model_fixtures.py
    # on the project machine: /work/ref-venv/bin/python tests/reference/make_model_fixtures.py

It runs in well under a minute on two CPU cores. It builds four models with NeMo's own
classes from config dicts, each with a SentencePiece BPE tokenizer trained here (cased, with
punctuation, so that NeMo's punctuation rules for text, timestamps and segments apply):

- `tdt`: EncDecRNNTBPEModel with TDT (durations 0-4); 128 mels, dw_striding x8, xscaling,
  rel_pos, batch-norm convolutions, kernel 9, 2 LSTM layers (parakeet-tdt-0.6b-v2's layout);
- `rnnt`: EncDecRNNTBPEModel, plain RNNT; 80 mels, striding x4, no xscaling, layer-norm
  convolutions, untied position biases, 2 LSTM layers, joint without dropout (`joint_net.1`);
- `ctc`: EncDecCTCModelBPE; 80 mels with all_features normalisation, dw_striding x8,
  rel_pos_local_attn with a [16, 16] context (shorter than every speech clip);
- `hybrid_tdt_ctc`: EncDecHybridRNNTCTCBPEModel, TDT and CTC heads, 80 mels, dw_striding x8,
  encoder without biases (parakeet-tdt_ctc-110m's layout).

A random model decides the same thing on every frame, which makes decoding tests vacuous.
Before saving, a few offsets and scales are therefore set from the model's own activations
(`make_decisions_depend_on_audio`), and the script asserts that greedy decoding then varies
with the audio (`check_varied`). References come from the model restored from the saved
`.nemo`, in eval mode, on the clips as NeMo's loader reads them
(`AudioSegment.from_file(path, target_sr=16000, channel_selector="average")`).

Writes, per model, to tests/fixtures/models/ (all three files or none):
- `<name>.nemo`: the model, from `save_to`;
- `<name>.npz`: float32 arrays per clip stem: `<stem>/features` (T, F), `<stem>/encoder`
  (T', D), and for a CTC head `<stem>/ctc_log_probs` (T', V + 1);
- `<name>.json`: versions, command, model class, config, decoding strategy; per clip the
  lengths and every head's greedy ids, frames, TDT durations, CTC alignment and timestamps;
  the same for one padded batch of all clips; NeMo's `transcribe` output (batch size 1 and
  8); beam-search n-best lists for transducer heads. tests/reference/README.md has the keys.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nemo
import numpy as np
import sentencepiece
import torch
from nemo.collections.asr.models import (
    ASRModel,
    EncDecCTCModel,
    EncDecCTCModelBPE,
    EncDecHybridRNNTCTCBPEModel,
    EncDecHybridRNNTCTCModel,
    EncDecRNNTBPEModel,
    EncDecRNNTModel,
)
from nemo.collections.asr.parts.preprocessing.segment import AudioSegment
from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
from omegaconf import DictConfig, OmegaConf, open_dict

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
OUT = ROOT / "tests" / "fixtures" / "models"
COMMAND = "python tests/reference/make_model_fixtures.py"
CLIPS: dict[str, dict[str, str]] = json.loads((AUDIO / "clips.json").read_text())["clips"]
# Clips with speech from start to end: the varied-output checks run on these.
SPEECH_CLIPS = [clip for clip, info in CLIPS.items() if "text" in info]

SEED = 0
VOCAB_SIZE = 128
DURATIONS = [0, 1, 2, 3, 4]
MAX_SYMBOLS = 10  # as in NVIDIA's configs
STRATEGY = "greedy_batch"  # NeMo's default, and what `transcribe` uses
BEAM = {"strategy": "beam", "beam_size": 4, "return_best_hypothesis": False, "score_norm": True}
BEAM_CLIPS = 3
LOGIT_STD = 3.0  # spread of each output logit over the samples (how peaked probabilities are)

# ---------------------------------------------------------------------------------------------
# Tokenizer

_WORDS = """the quick brown fox jumps over lazy dog seven tired sailors counted forty birds at
noon please call stella and ask her to bring these things nine hundred twelve people voted on
tuesday a warm breeze drifted across quiet harbour one two three four five six eight ten
morning evening river small house green light boat north south station"""
_FIRST_WORDS = ["The", "A", "Please", "Seven", "Nine", "Stella", "On", "Ten"]


def corpus_lines(rng: random.Random, count: int = 400) -> list[str]:
    """The clips' own sentences, then `count` made-up ones: cased, with commas and . ? !

    Punctuation pieces in the vocabulary switch on NeMo's punctuation handling in decoding:
    no space before them in the text, TDT timestamp refinement, segments split at . ? !
    """
    words = _WORDS.split()
    lines = [info["text"] for info in CLIPS.values() if "text" in info]
    for _ in range(count):
        sentence = [rng.choice(_FIRST_WORDS)] + [
            rng.choice(words) for _ in range(rng.randint(3, 10))
        ]
        if len(sentence) > 5 and rng.random() < 0.4:
            sentence[rng.randint(2, len(sentence) - 2)] += ","
        lines.append(" ".join(sentence) + rng.choice([".", ".", ".", "?", "!"]))
    return lines


def train_tokenizer(directory: Path) -> dict[str, str]:
    """Train a BPE SentencePiece model with NeMo's helper; returns the `tokenizer` config.

    The helper writes tokenizer.model, tokenizer.vocab and vocab.txt, which NeMo's BPE
    models need. The trainer reads every line (no sampling, so its shuffle does nothing),
    its random generator is seeded, and it runs on relative paths (it stores its arguments
    in tokenizer.model): the file is byte-identical on every run.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "corpus.txt").write_text("\n".join(corpus_lines(random.Random(SEED))) + "\n")
    sentencepiece.set_random_generator_seed(SEED)
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        create_spt_model(
            "corpus.txt",
            vocab_size=VOCAB_SIZE,
            sample_size=-1,
            do_lower_case=False,
            tokenizer_type="bpe",
            output_dir=".",
        )
    finally:
        os.chdir(cwd)
    return {"dir": str(directory), "type": "bpe"}


# ---------------------------------------------------------------------------------------------
# Model configs: NVIDIA's section layout, tiny sizes


def preprocessor_config(features: int, normalize: str = "per_feature") -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": normalize,
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": features,
        "n_fft": 512,
        "log": True,
        "frame_splicing": 1,
        "dither": 0.0,  # NVIDIA's configs have 1e-5: 0 makes features reproducible
        "pad_to": 0,
        "pad_value": 0.0,
    }


def encoder_config(feat_in: int, d_model: int, n_heads: int, **overrides: Any) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": feat_in,
        "feat_out": -1,
        "n_layers": 2,
        "d_model": d_model,
        "use_bias": True,
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "subsampling_conv_channels": 32,
        "causal_downsampling": False,
        "ff_expansion_factor": 4,
        "self_attention_model": "rel_pos",
        "n_heads": n_heads,
        "att_context_size": [-1, -1],
        "att_context_style": "regular",
        "xscaling": True,
        "untie_biases": True,
        "pos_emb_max_len": 5000,
        "conv_kernel_size": 9,
        "conv_norm_type": "batch_norm",
        "conv_context_size": None,
        "dropout": 0.0,
        "dropout_pre_encoder": 0.0,
        "dropout_emb": 0.0,
        "dropout_att": 0.0,
        **overrides,
    }


def transducer_sections(
    d_model: int, pred_layers: int, joint_dropout: float, tdt: bool
) -> dict[str, Any]:
    """`model_defaults`, `decoder`, `joint`, `decoding` and `loss` of an RNNT or TDT model."""
    durations = DURATIONS if tdt else []
    decoding: dict[str, Any] = {
        "strategy": STRATEGY,
        "model_type": "tdt" if tdt else "rnnt",
        "greedy": {"max_symbols": MAX_SYMBOLS},
    }
    loss: dict[str, Any] = {"loss_name": "default"}
    if tdt:
        decoding["durations"] = durations
        loss = {
            "loss_name": "tdt",
            "tdt_kwargs": {
                "fastemit_lambda": 0.0,
                "clamp": -1.0,
                "durations": durations,
                "sigma": 0.02,
                "omega": 0.1,
            },
        }
    return {
        "model_defaults": {
            "enc_hidden": d_model,
            "pred_hidden": 64,
            "joint_hidden": 64,
            "tdt_durations": durations,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {
                "pred_hidden": 64,
                "pred_rnn_layers": pred_layers,
                "t_max": None,
                "dropout": 0.0,
            },
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": False,
            "num_extra_outputs": len(durations),
            "jointnet": {
                "joint_hidden": 64,
                "activation": "relu",
                "dropout": joint_dropout,  # > 0 adds a Dropout: the output layer is `joint_net.2`
                "encoder_hidden": d_model,
                "pred_hidden": 64,
            },
        },
        "decoding": decoding,
        "loss": loss,
    }


def ctc_sections(d_model: int) -> dict[str, Any]:
    return {
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": d_model,
            "num_classes": -1,
            "vocabulary": [],
        },
        "decoding": {"strategy": STRATEGY},
    }


@dataclass(frozen=True)
class ModelSpec:
    cls: type[ASRModel]
    config: dict[str, Any]
    # Share of (frame, prediction state) samples on which blank wins; per model, so that
    # each speech clip gets a handful to a few dozen tokens (TDT skips frames, RNNT cannot).
    blank_share: float


def model_specs(tokenizer: dict[str, str]) -> dict[str, ModelSpec]:
    base = {"sample_rate": 16000, "tokenizer": tokenizer, "optim": None}
    tdt = {
        **base,
        "preprocessor": preprocessor_config(128),
        "encoder": encoder_config(128, d_model=80, n_heads=4),
        **transducer_sections(80, pred_layers=2, joint_dropout=0.2, tdt=True),
    }
    rnnt = {
        **base,
        "preprocessor": preprocessor_config(80),
        "encoder": encoder_config(
            80,
            d_model=64,
            n_heads=2,
            subsampling="striding",
            subsampling_factor=4,
            xscaling=False,
            conv_norm_type="layer_norm",
        ),
        **transducer_sections(64, pred_layers=2, joint_dropout=0.0, tdt=False),
    }
    ctc = {
        **base,
        "preprocessor": preprocessor_config(80, normalize="all_features"),
        "encoder": encoder_config(
            80,
            d_model=64,
            n_heads=4,
            self_attention_model="rel_pos_local_attn",
            att_context_size=[16, 16],
        ),
        **ctc_sections(64),
    }
    hybrid = {
        **base,
        "preprocessor": preprocessor_config(80),
        "encoder": encoder_config(80, d_model=64, n_heads=4, use_bias=False),
        **transducer_sections(64, pred_layers=1, joint_dropout=0.2, tdt=True),
        "aux_ctc": {
            "ctc_loss_weight": 0.3,
            "use_cer": False,
            "ctc_reduction": "mean_batch",
            **ctc_sections(64),
        },
    }
    return {
        "tdt": ModelSpec(EncDecRNNTBPEModel, tdt, blank_share=0.5),
        "rnnt": ModelSpec(EncDecRNNTBPEModel, rnnt, blank_share=0.8),
        "ctc": ModelSpec(EncDecCTCModelBPE, ctc, blank_share=0.5),
        "hybrid_tdt_ctc": ModelSpec(EncDecHybridRNNTCTCBPEModel, hybrid, blank_share=0.5),
    }


# ---------------------------------------------------------------------------------------------
# Running NeMo


def load_clip(name: str) -> np.ndarray:
    segment = AudioSegment.from_file(str(AUDIO / name), target_sr=16000, channel_selector="average")
    return np.asarray(segment.samples, dtype=np.float32)


def padded(signals: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, samples) batch and the lengths, as NeMo's collate makes them."""
    lengths = torch.tensor([len(x) for x in signals])
    batch = torch.zeros(len(signals), int(lengths.max()))
    for row, x in zip(batch, signals, strict=True):
        row[: len(x)] = torch.from_numpy(x)
    return batch, lengths


@dataclass
class Encoded:
    features: torch.Tensor  # (B, F, T): T is one frame more than the longest feature_len
    feature_len: torch.Tensor
    encoded: torch.Tensor  # (B, D, T')
    encoded_len: torch.Tensor


@torch.no_grad()
def encode(model: ASRModel, signals: list[np.ndarray]) -> Encoded:
    signal, length = padded(signals)
    features, feature_len = model.preprocessor(input_signal=signal, length=length)
    encoded, encoded_len = model.encoder(audio_signal=features, length=feature_len)
    # a prompt-conditioned model's language prompt (`set_inference_prompt`), as NeMo's
    # streaming step applies it; every other model's hook returns `encoded` as it is
    prompt = getattr(model, "_apply_prompt_to_encoded", None)
    encoded = prompt(encoded) if prompt is not None else encoded
    return Encoded(features, feature_len, encoded, encoded_len)


# The checks below take NeMo's base classes, so that they hold for the BPE classes (their
# subclasses) and for the character-vocabulary ones (make_char_checkpoint_fixtures.py) alike.


def has_transducer(model: ASRModel) -> bool:
    return isinstance(model, EncDecRNNTModel)  # hybrids included


def is_hybrid(model: ASRModel) -> bool:
    return isinstance(model, EncDecHybridRNNTCTCModel)


def ctc_head(model: ASRModel) -> tuple[torch.nn.Module, Any] | None:
    """The CTC decoder module and its decoding object, where the model has a CTC head."""
    if isinstance(model, EncDecCTCModel):
        return model.decoder, model.decoding
    if is_hybrid(model):
        return model.ctc_decoder, model.ctc_decoding
    return None


def labels(model: ASRModel) -> list[str] | None:
    """A character model's vocabulary (NeMo's `labels`), None for a tokenizer model."""
    if hasattr(model, "tokenizer"):
        return None
    head = model.joint if has_transducer(model) else model.decoder
    return list(head.vocabulary)


def vocab_size(model: ASRModel) -> int:
    """Labels without blank; blank's id."""
    chars = labels(model)
    return model.tokenizer.vocab_size if chars is None else len(chars)


def text_to_ids(model: ASRModel, text: str) -> list[int]:
    """`text` in the model's ids: its tokenizer, or one label per character (characters
    outside the labels left out, as NeMo's char parser leaves them out)."""
    chars = labels(model)
    if chars is None:
        return model.tokenizer.text_to_ids(text)
    index = {label: i for i, label in enumerate(chars)}
    return [index[c] for c in text if c in index]


def with_timestamps(cfg: DictConfig) -> DictConfig:
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.compute_timestamps = True
    return cfg


def enable_timestamps(model: ASRModel) -> None:
    """Greedy decoding as saved, plus timestamps, as `transcribe(timestamps=True)` sets it.

    No decision changes: NeMo only records more per token (TDT: also the durations).
    """
    if is_hybrid(model):
        ctc_cfg = with_timestamps(model.cfg.aux_ctc.decoding)
        model.change_decoding_strategy(ctc_cfg, decoder_type="ctc", verbose=False)
        rnnt_cfg = with_timestamps(model.cfg.decoding)
        model.change_decoding_strategy(rnnt_cfg, decoder_type="rnnt", verbose=False)
    else:
        model.change_decoding_strategy(with_timestamps(model.cfg.decoding), verbose=False)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def offsets(timestamp: dict[str, Any]) -> dict[str, Any]:
    """The char / word / segment entries of NeMo's `Hypothesis.timestamp`, as they are."""
    return {k: to_jsonable(timestamp[k]) for k in ("char", "word", "segment") if k in timestamp}


@torch.no_grad()
def transducer_greedy(model: ASRModel, enc: Encoded) -> list[dict[str, Any]]:
    """NeMo's greedy transducer hypotheses for each item of a (padded) batch.

    From NeMo's `Hypothesis`: `y_sequence` (ids), `timestamp["timestep"]` (each token's
    encoder frame; the plain `timestamp` list before NeMo turns it into a dict), for TDT
    `token_duration` (the duration chosen with each token; 0 is allowed), and the offsets.
    """
    hyps = model.decoding.rnnt_decoder_predictions_tensor(
        enc.encoded, enc.encoded_len, return_hypotheses=True
    )
    tdt = bool(model.decoding.durations)
    return [
        {
            "ids": to_jsonable(hyp.y_sequence),
            "text": hyp.text,
            "frames": to_jsonable(hyp.timestamp["timestep"]),
            "durations": to_jsonable(hyp.token_duration) if tdt else None,
            "timestamp": offsets(hyp.timestamp),
        }
        for hyp in hyps
    ]


def ctc_collapse(alignment: list[int], blank: int) -> tuple[list[int], list[list[int]]]:
    """Ids after the CTC collapse, and each token's run of frames, [first, last + 1).

    NeMo's greedy CTC decoding keeps only the text; the ids and runs are derived here from
    NeMo's alignment and the caller checks them against NeMo's text.
    """
    ids: list[int] = []
    spans: list[list[int]] = []
    previous = blank
    for frame, label in enumerate(alignment):
        if label != blank and label != previous:
            ids.append(label)
            spans.append([frame, frame + 1])
        elif label != blank:
            spans[-1][1] = frame + 1
        previous = label
    return ids, spans


@torch.no_grad()
def ctc_greedy(model: ASRModel, enc: Encoded) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The CTC head's log-probs and NeMo's greedy hypotheses for each item of a batch.

    With `greedy_batch` (and outside `transcribe`), `Hypothesis.y_sequence` is the per-frame
    argmax (blank = last index) and `timestamp["timestep"]` the non-blank frames.
    """
    head, decoding = ctc_head(model)
    log_probs = head(encoder_output=enc.encoded)
    hyps = decoding.ctc_decoder_predictions_tensor(
        log_probs, decoder_lengths=enc.encoded_len, return_hypotheses=True
    )
    results = []
    for hyp in hyps:
        alignment = to_jsonable(hyp.y_sequence)
        ids, spans = ctc_collapse(alignment, blank=log_probs.shape[-1] - 1)
        assert decoding.decode_tokens_to_str_with_strip_punctuation(ids) == hyp.text
        timestamp = {"timestep": to_jsonable(hyp.timestamp["timestep"]), **offsets(hyp.timestamp)}
        results.append(
            {
                "alignment": alignment,
                "ids": ids,
                "spans": spans,
                "text": hyp.text,
                "timestamp": timestamp,
            }
        )
    return log_probs, results


@torch.no_grad()
def decode(model: ASRModel, enc: Encoded) -> tuple[list[dict[str, Any]], torch.Tensor | None]:
    """Per batch item, {"transducer": ..., "ctc": ...} for the heads the model has."""
    items: list[dict[str, Any]] = [{} for _ in range(len(enc.encoded_len))]
    log_probs = None
    if has_transducer(model):
        for item, result in zip(items, transducer_greedy(model, enc), strict=True):
            item["transducer"] = result
    if ctc_head(model) is not None:
        log_probs, results = ctc_greedy(model, enc)
        for item, result in zip(items, results, strict=True):
            item["ctc"] = result
    return items, log_probs


# ---------------------------------------------------------------------------------------------
# Making a random model's decisions depend on the audio


def output_layer(head: torch.nn.Module) -> torch.nn.Module:
    """The layer that makes a head's logits: the joint's last Linear or the CTC 1x1 conv."""
    return head.joint_net[-1] if hasattr(head, "joint_net") else head.decoder_layers[0]


def blank_index(head: torch.nn.Module) -> int:
    """Labels come first, then blank; a TDT joint has its duration logits after blank."""
    return head.num_classes_with_blank - getattr(head, "num_extra_outputs", 0) - 1


def as_matrix(layer: torch.nn.Module) -> torch.Tensor:
    """A Linear's or a 1x1 Conv1d's weight as a writable (out, in) view."""
    return layer.weight.view(layer.weight.shape[0], -1)


@torch.no_grad()
def centre_pre_encode(model: ASRModel, signals: list[np.ndarray]) -> None:
    """Subtract the frames' mean from the subsampling module's output (its `out` bias).

    After the ReLU convolutions every frame shares a large positive mean; through
    `pre_encode.out` it becomes one direction that dominates every encoder frame (cosine
    ~0.98 between frames), so that a relative-error test of the encoder would barely see the
    attention and convolution paths. Centring makes the frames differ.
    """
    captured: list[torch.Tensor] = []
    hook = model.encoder.pre_encode.out.register_forward_hook(
        lambda _module, _inputs, output: captured.append(output.reshape(-1, output.shape[-1]))
    )
    for x in signals:  # one clip at a time: padding frames would bias the mean
        encode(model, [x])
    hook.remove()
    model.encoder.pre_encode.out.bias -= torch.cat(captured).mean(0)


@torch.no_grad()
def encoder_frames(model: ASRModel, signals: list[np.ndarray]) -> torch.Tensor:
    """All valid encoder frames of the clips, (N, D)."""
    frames = []
    for x in signals:
        enc = encode(model, [x])
        frames.append(enc.encoded[0, :, : int(enc.encoded_len[0])].T)
    return torch.cat(frames)


@torch.no_grad()
def prediction_outputs(model: ASRModel, texts: list[str]) -> torch.Tensor:
    """Prediction-net outputs along the tokenised `texts`, from SOS on, (N, H).

    These resemble the states greedy decoding meets; one step from a zero state gives much
    smaller outputs, and scales chosen on those would let the label history swamp the joint.
    """
    outputs = []
    for text in texts:
        ids = torch.tensor([text_to_ids(model, text)])
        out, *_ = model.decoder.predict(ids, None, add_sos=True, batch_size=1)
        outputs.append(out[0])
    return torch.cat(outputs)


@torch.no_grad()
def standardise_inputs(layer: torch.nn.Module, inputs: torch.Tensor) -> None:
    """Fold (x - mean) / std of `inputs` (N, in) into `layer`, so that variation drives it."""
    mean, std = inputs.mean(0), inputs.std(0) + 1e-3
    weight = as_matrix(layer)
    weight /= std
    layer.bias -= weight @ mean


@torch.no_grad()
def output_inputs(
    model: ASRModel, head: torch.nn.Module, frames: torch.Tensor, states: torch.Tensor
) -> torch.Tensor:
    """What a head's output layer reads, (N, in): for CTC the encoder frames, for a joint
    its hidden activations on every (frame, prediction state) pair."""
    if head is not getattr(model, "joint", None):
        return frames
    enc = model.joint.project_encoder(frames)[:, None]  # (T, 1, H)
    pred = model.joint.project_prednet(states)[None]  # (1, U, H)
    hidden = model.joint.joint_net[:-1](enc + pred)  # activation (and dropout, off in eval)
    return hidden.reshape(-1, hidden.shape[-1])


def logits_of(layer: torch.nn.Module, inputs: torch.Tensor, rows: slice) -> torch.Tensor:
    return inputs @ as_matrix(layer)[rows].T + layer.bias[rows]


@torch.no_grad()
def standardise_logits(layer: torch.nn.Module, inputs: torch.Tensor, rows: slice) -> None:
    """Give each output in `rows` zero mean and LOGIT_STD spread over the samples.

    Otherwise the output with the largest random bias or weight norm wins almost
    everywhere; this way each label (or TDT duration) wins on some frames.
    """
    logits = logits_of(layer, inputs, rows)
    mean, scale = logits.mean(0), LOGIT_STD / (logits.std(0) + 1e-6)
    layer.bias[rows] = (layer.bias[rows] - mean) * scale
    as_matrix(layer)[rows] *= scale[:, None]


def threshold_between_samples(values: torch.Tensor, share: float) -> float:
    """A threshold with `share` of `values` below it, halfway between two sample values.

    A plain quantile is one of the samples: that sample would become an exact tie between
    blank and a label, which float rounding decides differently in every implementation.
    """
    ordered = values.flatten().sort().values
    k = min(max(round(share * len(ordered)), 1), len(ordered) - 1)
    return float(ordered[k - 1] + ordered[k]) / 2


@torch.no_grad()
def set_ctc_blank(layer: torch.nn.Module, frames: torch.Tensor, blank: int, share: float) -> float:
    """Set the blank's bias so that blank wins on `share` of the frames; returns it."""
    logits = logits_of(layer, frames, slice(0, blank + 1))
    margin = logits[:, :blank].max(-1).values - logits[:, blank]
    layer.bias[blank] += threshold_between_samples(margin, share)
    return float(layer.bias[blank])


@torch.no_grad()
def set_joint_blank(
    layer: torch.nn.Module, hidden: torch.Tensor, blank: int, share: float
) -> float:
    """Make the blank's logit c * sum(hidden), with c such that blank wins on `share`.

    After a few emissions the LSTM state drifts to where the joint's ReLU activations are
    large, and a random blank row then loses by more and more: decoding emits `max_symbols`
    tokens on frame after frame. A blank logit proportional to the activation mass grows
    with it, so the choice depends on the direction of the activations, not their size.
    """
    labels = logits_of(layer, hidden, slice(0, blank))
    ratio = labels.max(-1).values / hidden.sum(-1).clamp_min(1e-6)
    c = threshold_between_samples(ratio, share)
    layer.weight[blank] = c
    layer.bias[blank] = 0.0
    return c


@torch.no_grad()
def make_decisions_depend_on_audio(
    model: ASRModel, signals: list[np.ndarray], texts: list[str], blank_share: float
) -> dict[str, Any]:
    """Set a few offsets and scales from the model's own activations on `signals` / `texts`.

    1. centre the subsampling output (`centre_pre_encode`);
    2. standardise what the heads read from the encoder and, for a joint, from the
       prediction net (run along the tokenised `texts`), so that both count;
    3. standardise each label and TDT-duration logit over the samples;
    4. set the blank (`set_ctc_blank`, `set_joint_blank`) so that it wins on `blank_share`
       of the samples: neither "blank everywhere" nor a token on every frame.
    Everything else keeps NeMo's random initialisation. Returns the chosen numbers.
    """
    centre_pre_encode(model, signals)
    frames = encoder_frames(model, signals)
    chosen: dict[str, Any] = {"logit_std": LOGIT_STD, "blank_share": blank_share}
    heads, states = [], torch.empty(0)
    if has_transducer(model):
        heads.append(model.joint)
        states = prediction_outputs(model, texts)
        standardise_inputs(model.joint.enc, frames)
        standardise_inputs(model.joint.pred, states)
    if ctc_head(model) is not None:
        heads.append(ctc_head(model)[0])
        standardise_inputs(output_layer(heads[-1]), frames)
    for head in heads:
        layer, blank = output_layer(head), blank_index(head)
        inputs = output_inputs(model, head, frames, states)
        standardise_logits(layer, inputs, slice(0, blank + 1))
        if layer.weight.shape[0] > blank + 1:  # TDT durations: an argmax of their own
            standardise_logits(layer, inputs, slice(blank + 1, None))
        if head is getattr(model, "joint", None):
            chosen["joint_blank_weight"] = set_joint_blank(layer, inputs, blank, blank_share)
        else:
            chosen["ctc_blank_bias"] = set_ctc_blank(layer, inputs, blank, blank_share)
    return chosen


# ---------------------------------------------------------------------------------------------
# How varied the decisions are


def decision_stats(clips: dict[str, Any], arrays: dict[str, np.ndarray], blank: int) -> dict:
    """Per head, over the speech clips: how many tokens, which ones, on which frames."""
    stats: dict[str, Any] = {}
    speech = [clips[c] for c in SPEECH_CLIPS]
    if "transducer" in speech[0]:
        hyps = [c["transducer"] for c in speech]
        per_frame = Counter((i, f) for i, h in enumerate(hyps) for f in h["frames"])
        stats["transducer"] = {
            "tokens_per_clip": [len(h["ids"]) for h in hyps],
            "distinct_ids": len({t for h in hyps for t in h["ids"]}),
            "distinct_sequences": len({tuple(h["ids"]) for h in hyps}),
            "frames": sum(c["encoded_length"] for c in speech),
            "frames_with_tokens": len(per_frame),
            "tokens_on_one_frame": dict(sorted(Counter(per_frame.values()).items())),
        }
        if hyps[0]["durations"] is not None:
            durations = Counter(d for h in hyps for d in h["durations"])
            stats["transducer"]["durations"] = dict(sorted(durations.items()))
    if "ctc" in speech[0]:
        hyps = [c["ctc"] for c in speech]
        alignment = [label for h in hyps for label in h["alignment"]]
        top2 = [np.sort(arrays[f"{Path(c).stem}/ctc_log_probs"], -1)[:, -2:] for c in clips]
        stats["ctc"] = {
            "tokens_per_clip": [len(h["ids"]) for h in hyps],
            "distinct_ids": len({t for h in hyps for t in h["ids"]}),
            "distinct_sequences": len({tuple(h["ids"]) for h in hyps}),
            "frames": len(alignment),
            "blank_frames": sum(label == blank for label in alignment),
            # the closest argmax decision of all clips: how much error an implementation has
            "min_top2_log_prob_gap": float(min((t[:, 1] - t[:, 0]).min() for t in top2)),
        }
    return stats


def check_varied(stats: dict[str, Any]) -> None:
    """Fail unless every head's greedy output varies across frames and speech clips."""
    for head, s in stats.items():
        assert s["distinct_ids"] >= 5, (head, s)
        assert s["distinct_sequences"] == len(SPEECH_CLIPS), (head, s)
        assert min(s["tokens_per_clip"]) > 0, (head, s)
        if head == "transducer":
            assert 0 < s["frames_with_tokens"] < s["frames"], (head, s)
            assert len(s.get("durations", [0, 1])) > 1, (head, s)
        else:
            assert 0 < s["blank_frames"] < s["frames"], (head, s)


# ---------------------------------------------------------------------------------------------
# References


@torch.no_grad()
def clip_references(
    model: ASRModel, signals: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each clip alone: features, encoder output and every head's greedy decisions."""
    arrays: dict[str, np.ndarray] = {}
    clips: dict[str, Any] = {}
    for clip, x in signals.items():
        stem = Path(clip).stem
        enc = encode(model, [x])
        (decoded,), log_probs = decode(model, enc)
        t_enc = int(enc.encoded_len[0])
        # all T = feature_length + 1 frames, as NeMo's encoder received them: the last one is
        # the masked extra STFT frame (pad_value)
        arrays[f"{stem}/features"] = enc.features[0].T.numpy()
        arrays[f"{stem}/encoder"] = enc.encoded[0, :, :t_enc].T.numpy()
        if log_probs is not None:
            arrays[f"{stem}/ctc_log_probs"] = log_probs[0, :t_enc].numpy()
        clips[clip] = {
            "num_samples": len(x),
            "feature_frames": enc.features.shape[-1],
            "feature_length": int(enc.feature_len[0]),
            "encoded_length": t_enc,
            **decoded,
        }
    return arrays, clips


DECISIONS = {"transducer": ("ids", "frames"), "ctc": ("alignment", "ids")}


def differing(a: dict[str, Any], b: dict[str, Any], fields: dict[str, tuple[str, ...]]) -> bool:
    return any(a[h][k] != b[h][k] for h, keys in fields.items() if h in a for k in keys)


@torch.no_grad()
def batch_references(
    model: ASRModel, signals: dict[str, np.ndarray], arrays: dict[str, np.ndarray], single: dict
) -> dict[str, Any]:
    """All clips as one zero-padded batch through preprocessor, encoder and decoding.

    Decisions (ids, frames, CTC alignment) are compared with the clip-alone run. TDT
    durations are compared apart: NeMo 3.0.0's batched label looping can record, for a clip
    that found its token on a step's first joint call, the duration argmax of a later
    inner-loop call made for other clips (`tdt_label_looping.py`: stage 1.2 recomputes
    `durations` for the whole batch); time itself advances by the right duration.
    """
    clips = list(signals)
    enc = encode(model, [signals[c] for c in clips])
    items, _ = decode(model, enc)
    feature_diff = encoder_diff = 0.0
    batched: dict[str, Any] = {}
    for i, clip in enumerate(clips):
        stem = Path(clip).stem
        t, t_enc = int(enc.feature_len[i]), int(enc.encoded_len[i])
        features = enc.features[i, :, :t].T.numpy()
        encoded = enc.encoded[i, :, :t_enc].T.numpy()
        feature_diff = max(feature_diff, np.abs(features - arrays[f"{stem}/features"][:t]).max())
        encoder_diff = max(encoder_diff, np.abs(encoded - arrays[f"{stem}/encoder"]).max())
        batched[clip] = {"feature_length": t, "encoded_length": t_enc, **items[i]}
    mismatches = [c for c in clips if differing(batched[c], single[c], DECISIONS)]
    durations = {"transducer": ("durations",)}
    return {
        "clips": batched,
        "features_max_abs_diff_to_single": float(feature_diff),
        "encoder_max_abs_diff_to_single": float(encoder_diff),
        "decisions_equal_single": not mismatches,
        "decision_mismatches": mismatches,
        "duration_mismatches": [c for c in clips if differing(batched[c], single[c], durations)],
    }


@torch.no_grad()
def transcripts(
    model: ASRModel, signals: dict[str, np.ndarray], batch_size: int, **prompt: Any
) -> dict[str, dict[str, Any]]:
    """NeMo's `transcribe(..., timestamps=True)` on the numpy samples: text, ids, timestamps.

    `transcribe` pads inputs shorter than 1 s to 1 s (half on each side) without shifting
    the times back, and leaves encoder, decoder and joint in training mode (`unfreeze`):
    the model is put back in eval mode here. For CTC, `transcribe` replaces `y_sequence`
    with the per-frame log-probs: the ids are their argmax, collapsed, checked against the text.
    `prompt` goes to `transcribe` as it is (a prompt model's `target_lang`).
    """
    clips = list(signals)
    hyps = model.transcribe(
        [signals[c] for c in clips], batch_size=batch_size, timestamps=True, verbose=False,
        **prompt,
    )  # fmt: skip
    model.eval()
    hyps = hyps[0] if isinstance(hyps, tuple) else hyps
    out = {}
    for clip, hyp in zip(clips, hyps, strict=True):
        sequence = hyp.y_sequence
        if isinstance(sequence, torch.Tensor) and sequence.ndim == 2:  # CTC log-probs
            ids, _ = ctc_collapse(sequence.argmax(-1).tolist(), blank=sequence.shape[-1] - 1)
            assert ctc_head(model)[1].decode_tokens_to_str_with_strip_punctuation(ids) == hyp.text
        else:
            ids = to_jsonable(sequence)
        out[clip] = {"text": hyp.text, "ids": ids, "timestamp": offsets(hyp.timestamp)}
    return out


def transcribe_differences(single: dict, batched: dict) -> dict[str, list[str]]:
    """Per clip, the fields of the `transcribe` output that batching changed."""
    differences = {}
    for clip, entry in single.items():
        other = batched[clip]
        fields = [k for k in ("text", "ids") if entry[k] != other[k]]
        fields += [
            f"timestamp.{k}"
            for k in entry["timestamp"]
            if entry["timestamp"][k] != other["timestamp"][k]
        ]
        if fields:
            differences[clip] = fields
    return differences


@torch.no_grad()
def beam_nbest(model: ASRModel, signals: dict[str, np.ndarray]) -> dict[str, list[dict]]:
    """NeMo's `beam` transducer search (n-best lists) on the first clips; greedy after."""
    greedy = copy.deepcopy(model.cfg.decoding)
    cfg = copy.deepcopy(greedy)
    with open_dict(cfg):
        cfg.strategy = BEAM["strategy"]
        cfg.beam = {k: v for k, v in BEAM.items() if k != "strategy"}
        cfg.compute_timestamps = False  # TDT beam hypotheses lack the durations timestamps need
    switch = {"decoder_type": "rnnt"} if is_hybrid(model) else {}
    model.change_decoding_strategy(cfg, verbose=False, **switch)
    out = {}
    for clip in list(signals)[:BEAM_CLIPS]:
        enc = encode(model, [signals[clip]])
        (nbest,) = model.decoding.rnnt_decoder_predictions_tensor(
            enc.encoded, enc.encoded_len, return_hypotheses=True
        )
        out[clip] = [
            {
                "ids": to_jsonable(h.y_sequence),
                "score": float(h.score),
                "timestamp": to_jsonable(h.timestamp),
            }
            for h in getattr(nbest, "n_best_hypotheses", nbest)
        ]
    model.change_decoding_strategy(greedy, verbose=False, **switch)
    return out


def geometry(model: ASRModel, config: dict[str, Any]) -> dict[str, Any]:
    """The sizes that matter to an implementation."""
    keys = ("feat_in", "d_model", "n_layers", "n_heads", "subsampling", "subsampling_factor",
            "subsampling_conv_channels", "self_attention_model", "att_context_size")  # fmt: skip
    geo = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": vocab_size(model),
        **{k: config["encoder"][k] for k in keys},
    }
    if has_transducer(model):
        geo["pred_rnn_layers"] = config["decoder"]["prednet"]["pred_rnn_layers"]
    return geo


def build_model(spec: ModelSpec, speech: list[np.ndarray]) -> tuple[ASRModel, dict[str, Any]]:
    torch.manual_seed(SEED)
    model = spec.cls(cfg=OmegaConf.create(spec.config)).eval()
    texts = corpus_lines(random.Random(SEED), count=40)
    return model, make_decisions_depend_on_audio(model, speech, texts, spec.blank_share)


def references(model: ASRModel, signals: dict[str, np.ndarray]) -> tuple[dict, dict[str, Any]]:
    """Every reference of one restored model: (arrays for the npz, the rest for the JSON)."""
    # as saved, before any change below
    config = OmegaConf.to_container(model.cfg, resolve=True, enum_to_str=True)
    enable_timestamps(model)
    arrays, clips = clip_references(model, signals)
    meta: dict[str, Any] = {
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "decoding_strategy": STRATEGY,
        "max_symbols": MAX_SYMBOLS,
        "geometry": geometry(model, config),
        "stats": decision_stats(clips, arrays, blank=vocab_size(model)),
        "config": config,
        "clips": clips,
        "batched": batch_references(model, signals, arrays, clips),
    }
    # everything that runs the encoder outside `transcribe` comes before it (see `transcripts`)
    if has_transducer(model):
        meta["beam_decoding"] = BEAM
        meta["beam"] = beam_nbest(model, signals)
    meta["transcribe"] = transcripts(model, signals, batch_size=1)
    meta["transcribe_batched"] = transcripts(model, signals, batch_size=len(signals))
    meta["transcribe_batched_differences"] = transcribe_differences(
        meta["transcribe"], meta["transcribe_batched"]
    )
    if is_hybrid(model):
        model.change_decoding_strategy(decoder_type="ctc", verbose=False)
        meta["transcribe_ctc"] = transcripts(model, signals, batch_size=1)
    return arrays, meta


def make_fixture(
    name: str, spec: ModelSpec, signals: dict[str, np.ndarray], provenance: dict, staging: Path
) -> dict[str, Any]:
    """Build, tune, save, restore and run one model; its three files go to `staging`."""
    model, chosen = build_model(spec, [signals[c] for c in SPEECH_CLIPS])
    path = staging / f"{name}.nemo"
    model.save_to(str(path))
    restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
    arrays, meta = references(restored, signals)
    meta = {**provenance, "weight_choices": chosen, **meta}
    print(f"{name}: {path.stat().st_size / 1e6:.2f} MB .nemo, {meta['geometry']}")
    print(f"  stats: {json.dumps(meta['stats'])}")
    print(f"  batched: decisions equal single {meta['batched']['decisions_equal_single']}, "
          f"TDT durations differ on {len(meta['batched']['duration_mismatches'])} clips; "
          f"transcribe batched differs on {sorted(meta['transcribe_batched_differences'])}")  # fmt: skip
    check_varied(meta["stats"])
    np.savez_compressed(staging / f"{name}.npz", **arrays)
    (staging / f"{name}.json").write_text(json.dumps(to_jsonable(meta), indent=1) + "\n")
    return meta


def made_by(command: str) -> dict[str, str]:
    """What made a fixture: the command and the versions of NeMo, torch, SentencePiece, Python."""
    return {
        "generated_by": command,
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "sentencepiece_version": sentencepiece.__version__,
        "python": sys.version.split()[0],
    }


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish(staging: Path, out: Path) -> None:
    """Copy every staged fixture file into `out`: called once every model passed its checks,
    so that a failed run leaves the committed fixtures as they were."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir()):
        shutil.copyfile(path, out / path.name)
        print(f"wrote {out / path.name} ({path.stat().st_size / 1e6:.2f} MB)")


def main() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 - in case a NeMo code path draws from the global RNG
    signals = {clip: load_clip(clip) for clip in CLIPS}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp) / "tokenizer")
        provenance = {
            **made_by(COMMAND),
            "tokenizer_model_sha256": file_sha256(Path(tokenizer["dir"]) / "tokenizer.model"),
        }
        staging = Path(tmp) / "out"
        staging.mkdir()
        for name, spec in model_specs(tokenizer).items():
            make_fixture(name, spec, signals, provenance, staging)
        publish(staging, OUT)


if __name__ == "__main__":
    main()
