"""A NeMo frame-VAD model configured as NVIDIA's Frame_VAD_Multilingual_MarbleNet_v2.0, and
NeMo's outputs for it: per-frame speech probabilities and post-processed speech segments.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_vad_fixtures.py

The model is NeMo's `EncDecFrameClassificationModel` built from the published MarbleNet
config in `configs/Frame_VAD_Multilingual_MarbleNet_v2.0.yaml` (its header says what is
assumed) with every size kept: it is small already (91.5K parameters, asserted). Weights are
NeMo's random initialisation, with random batch-norm statistics (so eval-mode batch norm is
exercised), and the output layer set from the model's own activations: its speech-minus-
non-speech logit is the encoder output's projection on Fisher's discriminant direction
between speech frames and noise frames of the test audio, scaled and shifted so that the noise frames' 90th percentile of it gives
probability 0.15 and the speech frames' median 0.9: speech frames lie mostly above 0.5 and
noise frames mostly below 0.3 (asserted, with no frame near a threshold).

Audio: `vad_speech_and_noise_16k.flac`, three clips of `fixtures/audio/` in a row with
low-level white noise before, between (2.0 s and 0.8 s: one pause that stays a pause under
NeMo's default post-processing and one that is filled) and after them, 16 kHz PCM16. Also
run: `odd_length_16k.wav` and `shorter_than_frame_16k.wav` (lengths that exercise masking).

Probabilities are computed as NeMo's `generate_vad_frame_pred` computes them (the model's
forward on the signal, softmax over the two classes, class 1), in float32 and without the
CPU autocast that function wraps around it (bfloat16 on a CPU), every output frame kept.
Segments are NeMo's `generate_vad_segment_table_per_tensor` after
`prepare_gen_segment_table` (what `generate_vad_segment_table` runs per file) on those
probabilities with `frame_length_in_sec` 0.02, under the post-processing defaults of NeMo's
`frame_vad_infer_postprocess.yaml` and a few other settings.

Writes tests/fixtures/vad/frame_vad_marblenet.{nemo,npz,json} and the FLAC.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import yaml
from nemo.collections.asr.models import EncDecFrameClassificationModel
from nemo.collections.asr.parts.utils import vad_utils
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base

CONFIGS = Path(__file__).resolve().parent / "configs"
CONFIG = CONFIGS / "Frame_VAD_Multilingual_MarbleNet_v2.0.yaml"
POSTPROCESS = CONFIGS / "frame_vad_infer_postprocess.yaml"
OUT = base.ROOT / "tests" / "fixtures" / "vad"
NAME = "frame_vad_marblenet"
AUDIO_NAME = "vad_speech_and_noise_16k.flac"
COMMAND = "python tests/reference/make_vad_fixtures.py"
SEED = 0
RATE = 16000
FRAME = 0.02  # seconds per output frame (`shift_length_in_sec` of NeMo's infer config)
PUBLISHED_PARAMETERS = 91_500  # the model card's "91.5K parameters"
NOISE = 0.002  # amplitude of the white noise in the pauses
PAUSES = (1.2, 2.0, 0.8, 1.5)  # seconds: before, between and after the three clips
SPEECH = ("speech_16k_mono.wav", "speech_22k.flac", "speech_24k.mp3")
EXTRA = ("odd_length_16k.wav", "shorter_than_frame_16k.wav")

# Post-processing settings: NeMo's infer-config defaults first, then settings that exercise
# the other branches of `binarization` / `filtering` (hysteresis, speech-first or not,
# short-speech deletion, no padding).
SETTINGS: dict[str, dict[str, Any]] = {
    "nemo_defaults": {},  # filled from frame_vad_infer_postprocess.yaml
    "hysteresis_no_pad": {
        "onset": 0.6, "offset": 0.2, "pad_onset": 0.0, "pad_offset": 0.0,
        "min_duration_on": 0.1, "min_duration_off": 0.1, "filter_speech_first": True,
    },
    "off_first": {
        "onset": 0.5, "offset": 0.5, "pad_onset": 0.1, "pad_offset": 0.2,
        "min_duration_on": 0.5, "min_duration_off": 0.3, "filter_speech_first": False,
    },
}  # fmt: skip


def published_config() -> dict[str, Any]:
    cfg = OmegaConf.load(CONFIG)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for section in ("train_ds", "validation_ds", "test_ds"):
        del model[section]  # training data: NeMo would set up its data loaders from them
    return model


def postprocessing_defaults() -> dict[str, Any]:
    infer = yaml.safe_load(POSTPROCESS.read_text())
    assert infer["vad"]["parameters"]["shift_length_in_sec"] == FRAME
    return dict(infer["vad"]["parameters"]["postprocessing"])


def compose_audio(rng: np.random.Generator) -> tuple[np.ndarray, list[list[float]]]:
    """Noise, clip, noise, ...; and the true speech spans in seconds."""
    parts, spans, at = [], [], 0
    for index, pause in enumerate(PAUSES):
        noise = rng.uniform(-NOISE, NOISE, int(pause * RATE)).astype(np.float32)
        parts.append(noise)
        at += len(noise)
        if index < len(SPEECH):
            clip = base.load_clip(SPEECH[index])
            parts.append(clip)
            spans.append([at / RATE, (at + len(clip)) / RATE])
            at += len(clip)
    return np.concatenate(parts), spans


@torch.no_grad()
def frame_outputs(model: EncDecFrameClassificationModel, signal: np.ndarray) -> dict[str, Any]:
    """Logits and speech probabilities per output frame, as generate_vad_frame_pred has them."""
    x = torch.from_numpy(signal)[None]
    length = torch.tensor([len(signal)])
    logits = model(input_signal=x, input_signal_length=length)
    probs = torch.softmax(logits, dim=-1)[0, :, 1]
    return {"logits": logits[0].numpy(), "probs": probs.numpy()}


@torch.no_grad()
def encoder_output(model: EncDecFrameClassificationModel, signal: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(signal)[None]
    feats, feat_len = model.preprocessor(input_signal=x, length=torch.tensor([len(signal)]))
    encoded, _ = model.encoder(audio_signal=feats, length=feat_len)
    return encoded[0].T  # (T', D)


def randomise_batch_norms(model: EncDecFrameClassificationModel, gen: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.weight.data = 0.5 + torch.rand(n, generator=gen)
            module.bias.data = 0.2 * torch.randn(n, generator=gen)
            module.running_mean.data = 0.2 * torch.randn(n, generator=gen)
            module.running_var.data = 0.5 + torch.rand(n, generator=gen)


def frame_masks(frames: int, spans: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Output frames well inside speech, and noise frames at least 0.3 s from any speech."""
    times = np.arange(frames) * FRAME
    speech = np.zeros(frames, dtype=bool)
    noise = np.ones(frames, dtype=bool)
    for start, end in spans:
        speech |= (times >= start + 0.1) & (times < end - 0.1)
        noise &= (times < start - 0.3) | (times >= end + 0.3)
    return speech, noise


def set_output_layer(
    model: EncDecFrameClassificationModel, signal: np.ndarray, spans: list[list[float]]
) -> dict[str, float]:
    """Speech logit - non-speech logit = scale * (h . d - midpoint), d = speech mean - noise mean."""
    h = encoder_output(model, signal)
    speech, noise = frame_masks(h.shape[0], spans)
    h = h.double().numpy()
    # Fisher's discriminant: the pooled within-class covariance (ridged) against the means
    pooled = np.cov(h[speech].T) + np.cov(h[noise].T)
    pooled += 1e-3 * np.trace(pooled) / len(pooled) * np.eye(len(pooled))
    direction = np.linalg.solve(pooled, h[speech].mean(0) - h[noise].mean(0))
    projection = h @ direction
    # the noise frames' 90th percentile at probability 0.15, the speech frames' median at 0.9
    low, high = float(np.quantile(projection[noise], 0.9)), float(np.median(projection[speech]))
    assert high > low, (low, high)
    logit_low, logit_high = np.log(0.15 / 0.85), np.log(0.9 / 0.1)
    scale = (logit_high - logit_low) / (high - low)
    layer = model.decoder.last_linear_layer
    layer.weight.data.zero_()
    layer.bias.data.zero_()
    layer.weight.data[1] = torch.from_numpy(scale * direction).float()
    layer.bias.data[1] = logit_low - scale * low
    return {"scale": float(scale), "noise_p90_projection": low, "speech_median_projection": high}


def segments(probs: np.ndarray, postprocessing: dict[str, Any]) -> list[list[float]]:
    """NeMo's per-file segment table (start, end, duration) for one probability sequence."""
    per_args = {"frame_length_in_sec": FRAME, **postprocessing}
    _, per_args_float = vad_utils.prepare_gen_segment_table(torch.from_numpy(probs), per_args)
    table = vad_utils.generate_vad_segment_table_per_tensor(torch.from_numpy(probs), per_args_float)
    return table.reshape(-1, 3).tolist() if table.numel() else []


def main() -> None:
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    gen = torch.Generator().manual_seed(SEED)
    config = published_config()
    model = EncDecFrameClassificationModel(cfg=OmegaConf.create(config))
    parameters = sum(p.numel() for p in model.parameters())
    assert abs(parameters - PUBLISHED_PARAMETERS) < 200, parameters  # 91,378: 0.13% off the card
    model.eval()
    randomise_batch_norms(model, gen)
    audio, spans = compose_audio(rng)
    choices = set_output_layer(model, audio, spans)

    OUT.mkdir(parents=True, exist_ok=True)
    soundfile.write(OUT / AUDIO_NAME, audio, RATE, subtype="PCM_16")
    nemo_path = OUT / f"{NAME}.nemo"
    model.save_to(str(nemo_path))
    restored = EncDecFrameClassificationModel.restore_from(str(nemo_path), map_location="cpu")
    restored.eval()

    SETTINGS["nemo_defaults"] = postprocessing_defaults()
    arrays: dict[str, np.ndarray] = {}
    inputs: dict[str, Any] = {}
    names = (AUDIO_NAME, *EXTRA)
    for name in names:
        folder = OUT if name == AUDIO_NAME else base.AUDIO
        signal = base.load_clip(str(folder / name))  # NeMo's AudioSegment; an absolute path
        out = frame_outputs(restored, signal)
        arrays[f"{name}/probs"] = out["probs"]
        arrays[f"{name}/logits"] = out["logits"]
        inputs[name] = {
            "num_samples": len(signal),
            "frames": len(out["probs"]),
            "segments": {key: segments(out["probs"], dict(s)) for key, s in SETTINGS.items()},
        }

    probs = arrays[f"{AUDIO_NAME}/probs"]
    speech, noise = frame_masks(len(probs), spans)
    stats = {
        "speech_frames_above_0.5": float((probs[speech] > 0.5).mean()),
        "noise_frames_below_0.3": float((probs[noise] < 0.3).mean()),
        "closest_to_a_threshold": float(
            min(
                np.abs(probs - t).min()
                for s in SETTINGS.values()
                for t in (s["onset"], s["offset"])
            )
        ),
    }
    assert stats["speech_frames_above_0.5"] > 0.6, stats
    assert stats["noise_frames_below_0.3"] > 0.9, stats
    assert stats["closest_to_a_threshold"] > 1e-4, stats
    default_segments = inputs[AUDIO_NAME]["segments"]["nemo_defaults"]
    assert len(default_segments) == 2, default_segments  # the 2.0 s pause stays, 0.8 s is filled

    np.savez_compressed(OUT / f"{NAME}.npz", **arrays)
    record = {
        "generated_by": COMMAND,
        "nemo_version": base.nemo.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "model_class": "nemo.collections.asr.models.classification_models."
        "EncDecFrameClassificationModel",
        "published_config": CONFIG.name,
        "parameters": parameters,
        "config": OmegaConf.to_container(restored.cfg, resolve=True),
        "weight_choices": choices,
        "audio": {
            "file": AUDIO_NAME,
            "clips": list(SPEECH),
            "pauses_seconds": list(PAUSES),
            "noise_amplitude": NOISE,
            "speech_spans_seconds": spans,
        },
        "frame_length_in_sec": FRAME,
        "postprocessing": SETTINGS,
        "stats": stats,
        "inputs": inputs,
    }
    (OUT / f"{NAME}.json").write_text(json.dumps(base.to_jsonable(record), indent=1) + "\n")
    print(json.dumps({"stats": stats, "segments": default_segments, "parameters": parameters}))


if __name__ == "__main__":
    main()
