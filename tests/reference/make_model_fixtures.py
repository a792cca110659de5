"""Tiny random-weight NeMo models and NeMo's outputs on the test clips.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0, torch). From the
repository root:

    python tests/reference/make_model_fixtures.py

Builds four models with NeMo's own classes from config dicts, each with a SentencePiece
BPE tokenizer trained here on a small English text, and saves them with `save_to`:

- `tdt.nemo`: EncDecRNNTBPEModel, TDT (durations 0-4), 128 mels, dw_striding x8, xscaling,
  batch-norm convolutions (parakeet-tdt-0.6b-v2's structure, tiny);
- `rnnt.nemo`: EncDecRNNTBPEModel, RNNT, 80 mels, striding x4, no xscaling, layer-norm
  convolutions, tied position biases, 2 LSTM layers, joint without dropout (joint_net.1);
- `ctc.nemo`: EncDecCTCModelBPE, 80 mels with all_features normalisation, dw_striding x8,
  rel_pos_local_attn with a [12, 12] context (shorter than the clips);
- `hybrid_tdt_ctc.nemo`: EncDecHybridRNNTCTCBPEModel, TDT + CTC heads, 80 mels, no biases.

Random weights make degenerate decisions (one token everywhere); each model's output
layers are scaled, deterministically, until greedy decoding emits several distinct tokens
that differ between clips (asserted below), before saving. References are then computed
from the model restored from the saved file, on the clips as NeMo's own loader reads them:
features, encoder output, greedy ids with frames / durations / alignments, NeMo's
timestamps from `transcribe(..., timestamps=True)`, the same for one padded batch of all
clips, and beam-search n-best lists for the transducers.

Writes tests/fixtures/models/<name>.nemo, <name>.npz (arrays) and <name>.json (the rest,
with the NeMo and torch versions and this command).
"""

from __future__ import annotations

import copy
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import nemo
import numpy as np
import torch
from nemo.collections.asr.models import (
    ASRModel,
    EncDecCTCModelBPE,
    EncDecHybridRNNTCTCBPEModel,
    EncDecRNNTBPEModel,
)
from nemo.collections.asr.parts.preprocessing.segment import AudioSegment
from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
from omegaconf import OmegaConf, open_dict

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
OUT = ROOT / "tests" / "fixtures" / "models"
CLIPS = json.loads((AUDIO / "clips.json").read_text())["clips"]
COMMAND = "python tests/reference/make_model_fixtures.py"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "seven",
    "tired",
    "sailors",
    "counted",
    "forty",
    "birds",
    "at",
    "noon",
    "please",
    "call",
    "stella",
    "and",
    "ask",
    "her",
    "to",
    "bring",
    "these",
    "things",
    "nine",
    "hundred",
    "twelve",
    "people",
    "voted",
    "on",
    "tuesday",
    "a",
    "warm",
    "breeze",
    "drifted",
    "across",
    "quiet",
    "harbour",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "eight",
    "ten",
    "morning",
    "evening",
]

PREPROCESSOR = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 80,
    "n_fft": 512,
    "log": True,
    "frame_splicing": 1,
    "dither": 0.0,
    "pad_to": 0,
    "pad_value": 0.0,
}
ENCODER = {
    "_target_": "nemo.collections.asr.modules.ConformerEncoder",
    "feat_in": 80,
    "feat_out": -1,
    "n_layers": 2,
    "d_model": 96,
    "subsampling": "dw_striding",
    "subsampling_factor": 8,
    "subsampling_conv_channels": 32,
    "causal_downsampling": False,
    "ff_expansion_factor": 4,
    "self_attention_model": "rel_pos",
    "n_heads": 4,
    "att_context_size": [-1, -1],
    "xscaling": True,
    "untie_biases": True,
    "pos_emb_max_len": 5000,
    "conv_kernel_size": 9,
    "conv_norm_type": "batch_norm",
    "dropout": 0.0,
    "dropout_pre_encoder": 0.0,
    "dropout_emb": 0.0,
    "dropout_att": 0.0,
}
TDT = {"loss_name": "tdt", "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0, "durations": [0, 1, 2, 3, 4],
                                         "sigma": 0.02, "omega": 0.1}}  # fmt: skip


def transducer_sections(
    pred_layers: int, joint_dropout: float, durations: list[int]
) -> dict[str, Any]:
    return {
        "model_defaults": {
            "enc_hidden": 96,
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
                "dropout": joint_dropout,
                "encoder_hidden": 96,
                "pred_hidden": 64,
            },
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": "tdt" if durations else "rnnt",
            "durations": durations,
            "greedy": {"max_symbols": 10},
            "tdt_include_token_duration": bool(durations),  # record durations in hypotheses
        },
    }


def model_specs(tokenizer: dict[str, Any]) -> dict[str, tuple[type, dict[str, Any]]]:
    base = {"sample_rate": 16000, "tokenizer": tokenizer, "optim": None}
    tdt = {
        **base,
        "preprocessor": {**PREPROCESSOR, "features": 128},
        "encoder": {**ENCODER, "feat_in": 128},
        **transducer_sections(1, 0.2, [0, 1, 2, 3, 4]),
        "loss": TDT,
    }
    rnnt = {
        **base,
        "preprocessor": PREPROCESSOR,
        "encoder": {
            **ENCODER,
            "subsampling": "striding",
            "subsampling_factor": 4,
            "xscaling": False,
            "conv_norm_type": "layer_norm",
            "untie_biases": False,
        },
        **transducer_sections(2, 0.0, []),
        "loss": {"loss_name": "default"},
    }
    ctc = {
        **base,
        "preprocessor": {**PREPROCESSOR, "normalize": "all_features"},
        "encoder": {
            **ENCODER,
            "self_attention_model": "rel_pos_local_attn",
            "att_context_size": [12, 12],
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 96,
            "num_classes": -1,
            "vocabulary": [],
        },
        "decoding": {"strategy": "greedy_batch"},
    }
    hybrid = {
        **base,
        "preprocessor": PREPROCESSOR,
        "encoder": {**ENCODER, "use_bias": False},
        **transducer_sections(1, 0.2, [0, 1, 2, 3, 4]),
        "loss": TDT,
        "aux_ctc": {
            "ctc_loss_weight": 0.3,
            "use_cer": False,
            "ctc_reduction": "mean_batch",
            "decoder": {
                "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                "feat_in": 96,
                "num_classes": -1,
                "vocabulary": [],
            },
            "decoding": {"strategy": "greedy_batch"},
        },
    }
    return {
        "tdt": (EncDecRNNTBPEModel, tdt),
        "rnnt": (EncDecRNNTBPEModel, rnnt),
        "ctc": (EncDecCTCModelBPE, ctc),
        "hybrid_tdt_ctc": (EncDecHybridRNNTCTCBPEModel, hybrid),
    }


def train_tokenizer(directory: Path) -> dict[str, Any]:
    rng = random.Random(0)
    text = directory / "text.txt"
    lines = [" ".join(clip.get("text", "").lower().strip(".").split()) for clip in CLIPS.values()]
    lines += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(600)]
    text.write_text("\n".join(line for line in lines if line) + "\n")
    create_spt_model(str(text), vocab_size=64, sample_size=-1, do_lower_case=True, output_dir=str(directory),
                     tokenizer_type="bpe")  # fmt: skip
    return {"dir": str(directory), "type": "bpe"}


def load_clip(name: str) -> np.ndarray:
    segment = AudioSegment.from_file(str(AUDIO / name), target_sr=16000, channel_selector="average")
    return np.asarray(segment.samples, dtype=np.float32)


def padded(batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(x) for x in batch])
    signal = torch.zeros(len(batch), int(lengths.max()))
    for row, x in zip(signal, batch, strict=True):
        row[: len(x)] = torch.from_numpy(x)
    return signal, lengths


def has_ctc(model: ASRModel) -> bool:
    return isinstance(model, (EncDecCTCModelBPE, EncDecHybridRNNTCTCBPEModel))


def has_transducer(model: ASRModel) -> bool:
    return isinstance(model, (EncDecRNNTBPEModel, EncDecHybridRNNTCTCBPEModel))


def output_layers(model: ASRModel) -> list[torch.nn.Parameter]:
    layers = []
    if has_transducer(model):
        layers.append(model.joint.joint_net[-1].weight)
    if isinstance(model, EncDecCTCModelBPE):
        layers.append(model.decoder.decoder_layers[0].weight)
    if isinstance(model, EncDecHybridRNNTCTCBPEModel):
        layers.append(model.ctc_decoder.decoder_layers[0].weight)
    return layers


@torch.no_grad()
def greedy_ids(model: ASRModel, signals: list[np.ndarray]) -> dict[str, list[list[int]]]:
    """Greedy ids per head ("transducer" / "ctc") for each signal, one at a time."""
    heads: dict[str, list[list[int]]] = {}
    for x in signals:
        signal, length = padded([x])
        features, feature_len = model.preprocessor(input_signal=signal, length=length)
        encoded, encoded_len = model.encoder(audio_signal=features, length=feature_len)
        if has_transducer(model):
            hyps = model.decoding.rnnt_decoder_predictions_tensor(
                encoded, encoded_len, return_hypotheses=True
            )
            heads.setdefault("transducer", []).append(hyps[0].y_sequence.tolist())
        if has_ctc(model):
            ctc_head = model.decoder if isinstance(model, EncDecCTCModelBPE) else model.ctc_decoder
            log_probs = ctc_head(encoder_output=encoded)[0, : int(encoded_len[0])]
            best = log_probs.argmax(-1).tolist()
            blank = log_probs.shape[-1] - 1
            heads.setdefault("ctc", []).append(
                [b for i, b in enumerate(best) if b != blank and (i == 0 or best[i - 1] != b)]
            )
    return heads


def varied(ids: list[list[int]]) -> bool:
    distinct = {token for item in ids for token in item}
    return len(distinct) >= 5 and len({tuple(item) for item in ids if item}) >= 3


@torch.no_grad()
def encoder_frames(model: ASRModel, signals: list[np.ndarray]) -> torch.Tensor:
    frames = []
    for x in signals:
        signal, length = padded([x])
        features, feature_len = model.preprocessor(input_signal=signal, length=length)
        encoded, encoded_len = model.encoder(audio_signal=features, length=feature_len)
        frames.append(encoded[0, :, : int(encoded_len[0])].T)
    return torch.cat(frames)


@torch.no_grad()
def focus_heads_on_frame_differences(model: ASRModel, signals: list[np.ndarray]) -> None:
    """Make the heads read what differs between frames.

    A random encoder's outputs are dominated by one direction shared by all frames, so a
    random head gives every frame the same argmax. Projecting that mean direction out of
    the heads' input weights and scaling by the frames' spread (biases zeroed) makes the
    decisions follow the audio. These are still random weights, only chosen with the data.
    """
    frames = encoder_frames(model, signals)
    mean, spread = frames.mean(0), frames.std(0) + 1e-3
    direction = mean / mean.norm()
    projection = torch.eye(len(mean)) - torch.outer(direction, direction)
    if has_transducer(model):
        model.joint.enc.weight.copy_(model.joint.enc.weight @ projection / spread)
        model.joint.enc.bias.zero_()
    for head in [
        h
        for h in (getattr(model, "ctc_decoder", None), model.decoder)
        if hasattr(h, "decoder_layers")
    ]:
        conv = head.decoder_layers[0]
        conv.weight.copy_((conv.weight[:, :, 0] @ projection / spread)[:, :, None])
        conv.bias.zero_()


def make_decisions_vary(model: ASRModel, signals: list[np.ndarray]) -> float:
    """Scale the output layers until every head's greedy output varies across clips."""
    originals = [p.detach().clone() for p in output_layers(model)]
    for scale in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0):
        for param, original in zip(output_layers(model), originals, strict=True):
            param.data.copy_(original * scale)
        if all(varied(ids) for ids in greedy_ids(model, signals).values()):
            return scale
    raise RuntimeError("could not make the random model's decisions depend on the input")


def to_jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


@torch.no_grad()
def references(model: ASRModel, name: str, signals: dict[str, np.ndarray]) -> tuple[dict, dict]:
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"clips": {}}
    ctc_head = None
    if isinstance(model, EncDecCTCModelBPE):
        ctc_head = model.decoder
    elif isinstance(model, EncDecHybridRNNTCTCBPEModel):
        ctc_head = model.ctc_decoder
    for clip, x in signals.items():
        stem = Path(clip).stem
        signal, length = padded([x])
        features, feature_len = model.preprocessor(input_signal=signal, length=length)
        encoded, encoded_len = model.encoder(audio_signal=features, length=feature_len)
        arrays[f"{stem}/features"] = features[0].T.numpy()
        arrays[f"{stem}/encoder"] = encoded[0].T.numpy()
        entry: dict[str, Any] = {
            "feature_length": int(feature_len[0]),
            "encoded_length": int(encoded_len[0]),
        }
        if has_transducer(model):
            (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(
                encoded, encoded_len, return_hypotheses=True
            )
            entry["transducer"] = {
                "ids": hyp.y_sequence.tolist(),
                "frames": to_jsonable(hyp.timestamp),
                "durations": to_jsonable(getattr(hyp, "token_duration", None)),
            }
        if ctc_head is not None:
            log_probs = ctc_head(encoder_output=encoded)
            arrays[f"{stem}/ctc_log_probs"] = log_probs[0, : int(encoded_len[0])].numpy()
            entry["ctc"] = {"alignment": log_probs[0, : int(encoded_len[0])].argmax(-1).tolist()}
        meta["clips"][clip] = entry
    return arrays, meta


@torch.no_grad()
def transcripts(
    model: ASRModel, signals: dict[str, np.ndarray], batch_size: int, timestamps: bool
) -> dict:
    """NeMo's `transcribe`: text, token ids (transducers) and char/word/segment offsets.

    CTC hypotheses hold per-frame log-probabilities in `y_sequence`; those are not kept
    (the per-frame argmax is in `clips[...]["ctc"]["alignment"]`).
    """
    clips = list(signals)
    hyps = model.transcribe(
        [signals[c] for c in clips], batch_size=batch_size, timestamps=timestamps, verbose=False
    )
    if isinstance(hyps, tuple):
        hyps = hyps[0]
    out = {}
    for clip, hyp in zip(clips, hyps, strict=True):
        entry: dict[str, Any] = {"text": hyp.text}
        sequence = hyp.y_sequence
        if (
            isinstance(sequence, (list, torch.Tensor))
            and np.asarray(to_jsonable(sequence)).ndim == 1
        ):
            entry["ids"] = to_jsonable(sequence)
        if timestamps:
            entry["timestamp"] = {
                k: to_jsonable(v) for k, v in hyp.timestamp.items() if k != "timestep"
            }
        out[clip] = entry
    return out


@torch.no_grad()
def beam_nbest(
    model: ASRModel, signals: dict[str, np.ndarray], beam_size: int = 4
) -> dict[str, Any]:
    """NeMo's default beam search n-best per clip (transducer models); greedy is restored after."""
    greedy = copy.deepcopy(model.cfg.decoding)
    cfg = copy.deepcopy(greedy)
    with open_dict(cfg):
        cfg.strategy = "beam"
        cfg.beam = {"beam_size": beam_size, "return_best_hypothesis": False, "score_norm": True}
        cfg.compute_timestamps = False  # NeMo's TDT beam cannot time its hypotheses
    switch = {"decoder_type": "rnnt"} if isinstance(model, EncDecHybridRNNTCTCBPEModel) else {}
    model.change_decoding_strategy(cfg, verbose=False, **switch)
    out = {}
    for clip, x in signals.items():
        signal, length = padded([x])
        features, feature_len = model.preprocessor(input_signal=signal, length=length)
        encoded, encoded_len = model.encoder(audio_signal=features, length=feature_len)
        nbest = model.decoding.rnnt_decoder_predictions_tensor(
            encoded, encoded_len, return_hypotheses=True
        )
        first = nbest[0]
        hyps = getattr(first, "n_best_hypotheses", first)  # NBestHypotheses, or a plain list
        out[clip] = [
            {
                "ids": h.y_sequence.tolist(),
                "score": float(h.score),
                "timestamp": to_jsonable(h.timestamp),
            }
            for h in hyps
        ]
    model.change_decoding_strategy(greedy, verbose=False, **switch)
    return out


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    signals = {clip: load_clip(clip) for clip in CLIPS}
    speech = [signals[c] for c in CLIPS if "text" in CLIPS[c]]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp))
        for name, (cls, cfg) in model_specs(tokenizer).items():
            torch.manual_seed(0)
            model = cls(cfg=OmegaConf.create(cfg)).eval()
            focus_heads_on_frame_differences(model, speech)
            scale = make_decisions_vary(model, speech)
            path = OUT / f"{name}.nemo"
            model.save_to(str(path))
            restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
            arrays, meta = references(restored, name, signals)
            saved_config = OmegaConf.to_container(restored.cfg, resolve=True, enum_to_str=True)
            # Before `transcribe`: NeMo's transcribe leaves the encoder in training mode
            # (unfreeze()), after which batch norm would use and update batch statistics.
            if has_transducer(restored):
                meta["beam"] = beam_nbest(restored, {c: signals[c] for c in list(signals)[:3]})
            meta.update(
                generated_by=COMMAND,
                nemo_version=nemo.__version__,
                torch_version=torch.__version__,
                python=sys.version.split()[0],
                model_class=f"{type(restored).__module__}.{type(restored).__name__}",
                output_scale=scale,
                decoding_strategy="greedy_batch",
                config=saved_config,
                transcribe=transcripts(restored, signals, batch_size=1, timestamps=True),
                transcribe_batched=transcripts(
                    restored, signals, batch_size=len(signals), timestamps=False
                ),
            )
            meta["batched_equals_single"] = all(
                meta["transcribe_batched"][c]["text"] == t["text"]
                and (t.get("ids") is None or meta["transcribe_batched"][c].get("ids") == t["ids"])
                for c, t in meta["transcribe"].items()
            )
            if isinstance(restored, EncDecHybridRNNTCTCBPEModel):
                restored.eval()
                restored.change_decoding_strategy(decoder_type="ctc", verbose=False)
                meta["transcribe_ctc"] = transcripts(
                    restored, signals, batch_size=1, timestamps=True
                )
            np.savez_compressed(OUT / f"{name}.npz", **arrays)
            (OUT / f"{name}.json").write_text(json.dumps(to_jsonable(meta), indent=1) + "\n")
            first = next(iter(meta["transcribe"].values()))
            print(f"{name}: scale {scale}, {path.stat().st_size / 1e6:.2f} MB, "
                  f"batched == single: {meta['batched_equals_single']}, first text {first['text'][:30]!r}")  # fmt: skip


if __name__ == "__main__":
    main()
