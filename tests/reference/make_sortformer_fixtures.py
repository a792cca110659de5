"""NeMo references for Sortformer diarization: NVIDIA's two Sortformer checkpoints, sizes shrunk.

    python tests/reference/make_sortformer_fixtures.py            # both
    python tests/reference/make_sortformer_fixtures.py diar_streaming_sortformer_4spk-v2

For each checkpoint (`configs/<name>.yaml`, NeMo's training recipe of the model: see its header),
this builds a random-weight `SortformerEncLabelModel` with NeMo's own classes, every flag as in
the recipe and only sizes shrunk (`SHRINK`), tunes the speaker head so that speaker activity
depends on the audio (below), saves it with `save_to`, restores it, and records NeMo's outputs
on three clips made of `fixtures/audio` WAVs:

- `forward` per clip: NeMo's per-frame speaker probabilities (B=1, `model.forward`), and the
  features the encoder received (once per clip: every chunk setting gets the same);
- `diarize` per clip: NeMo's `diarize(list_of_numpy, sample_rate=16000, include_tensor_outputs=True)`
  with its default post-processing (`PostProcessingParams`: onset/offset 0.5, no padding, no
  minimum durations): the RTTM-style lines and the probabilities behind them.

The streaming model (`streaming_mode: true`) is run for each chunk setting of `STREAMING`
(NeMo's `forward_streaming`: speaker cache, FIFO, chunk left/right context), set on
`model.sortformer_modules` as users set the model card's latency settings; the JSON records
each setting and the per-clip outputs under `settings[<name>]`.

Tuning: the head's last linear layer (`single_hidden_to_spks`) is rescaled and offset, from
NeMo's own logits on the clips, so that speaker k is active (p > 0.5) on about
`ACTIVE_SHARE[k]` of the frames with logits spread over a few units (`LOGIT_SPREAD`); the
script asserts that every speaker crosses 0.5 on some frames and not on others.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import nemo
import numpy as np
import torch
from nemo.collections.asr.models import SortformerEncLabelModel
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).resolve().parent / "configs"
OUT = ROOT / "tests" / "fixtures" / "checkpoints"
TARGET = "nemo.collections.asr.models.sortformer_diar_models.SortformerEncLabelModel"
SEED = 21

# dotted path -> shrunk value (every other key as the recipe has it)
SHRINK = {
    "model_defaults.fc_d_model": 64,
    "model_defaults.tf_d_model": 32,
    "sortformer_modules.fc_d_model": 64,
    "sortformer_modules.tf_d_model": 32,
    "encoder.d_model": 64,
    "encoder.n_layers": 2,
    "encoder.n_heads": 4,
    "encoder.subsampling_conv_channels": 32,
    "transformer_encoder.num_layers": 2,
    "transformer_encoder.hidden_size": 32,
    "transformer_encoder.inner_size": 64,
    "transformer_encoder.num_attention_heads": 4,
}
# the streaming recipe's cache and chunk (188 frames each) shrunk to the clips' length
STREAMING_SHRINK = {"sortformer_modules.spkcache_len": 16, "sortformer_modules.chunk_len": 12}

# chunk settings of the streaming model (sortformer_modules attributes), in 80 ms frames
STREAMING = {
    # the recipe's shape: no FIFO, update every frame, one frame of context each side
    "recipe": dict(spkcache_len=16, fifo_len=0, chunk_len=12, spkcache_update_period=1,
                   chunk_left_context=1, chunk_right_context=1),
    # a FIFO that fills and pops more than a chunk at once
    "fifo": dict(spkcache_len=16, fifo_len=8, chunk_len=4, spkcache_update_period=6,
                 chunk_left_context=1, chunk_right_context=3),
    # the model card's low-latency shape (small chunk, long right context, long FIFO), shrunk
    "low_latency": dict(spkcache_len=20, fifo_len=12, chunk_len=3, spkcache_update_period=10,
                        chunk_left_context=1, chunk_right_context=2),
}  # fmt: skip

ACTIVE_SHARE = (0.6, 0.45, 0.3, 0.2)
LOGIT_SPREAD = 3.0

# clip name -> pieces (file, first sample, end sample); `overlap` adds the second piece onto
# the first from `OVERLAP_AT` samples on
CLIPS = {
    "long": [("speech_16k_mono.wav", 0, None), ("silence_padded_16k.wav", 0, None),
             ("odd_length_16k.wav", 0, None)],
    "overlap": [("speech_16k_mono.wav", 0, None), ("odd_length_16k.wav", 0, None)],
    "short": [("shorter_than_frame_16k.wav", 0, None)],
}  # fmt: skip
OVERLAP_AT = 32000


def load_clips() -> dict[str, np.ndarray]:
    clips = {}
    for name, pieces in CLIPS.items():
        parts = [base.load_clip(file)[start:end] for file, start, end in pieces]
        if name == "overlap":
            first, second = parts
            mixed = np.zeros(max(len(first), OVERLAP_AT + len(second)) + 8000, np.float32)
            mixed[: len(first)] += first
            mixed[OVERLAP_AT : OVERLAP_AT + len(second)] += 0.8 * second
            clips[name] = mixed
        else:
            clips[name] = np.concatenate(parts).astype(np.float32)
    return clips


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        tree = tree.setdefault(key, {})
    tree[last] = value


def build_config(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe's `model` section resolved, with `target`, the assumed `model_defaults`
    (v1) and the shrunk sizes; also what was changed."""
    recipe = OmegaConf.load(CONFIGS / f"{name}.yaml")
    config = OmegaConf.to_container(recipe, resolve=True)["model"]
    changed: dict[str, Any] = {"target": TARGET}
    config["target"] = TARGET
    if "model_defaults" not in config:
        config["model_defaults"] = {
            "fc_d_model": config["fc_d_model"],
            "tf_d_model": config["tf_d_model"],
        }
        changed["model_defaults"] = "assumed: copied from model.fc_d_model / model.tf_d_model"
    shrink = dict(SHRINK)
    if config.get("streaming_mode"):
        shrink.update(STREAMING_SHRINK)
    for dotted, value in shrink.items():
        _put(config, dotted, value)
        changed[dotted] = value
    for top in ("fc_d_model", "tf_d_model"):
        if top in config:
            config[top] = config["model_defaults"][top]
            changed[top] = config[top]
    return config, changed


def head_logits(model: SortformerEncLabelModel, clips: dict[str, np.ndarray]) -> np.ndarray:
    """The speaker head's pre-sigmoid outputs on the frames NeMo's `forward` returns (the
    untuned head's probabilities stay near 0.5, so inverting the sigmoid is exact enough)."""
    outputs = []
    with torch.no_grad():
        for samples in clips.values():
            preds = model.forward(torch.from_numpy(samples)[None], torch.tensor([len(samples)]))
            p = preds[0].double().numpy()
            outputs.append(np.log(p / (1 - p)))
    return np.concatenate(outputs)


def set_streaming(model: SortformerEncLabelModel, values: dict[str, int]) -> None:
    for key, value in values.items():
        setattr(model.sortformer_modules, key, value)
    model.sortformer_modules._check_streaming_parameters()


def tune_head(model: SortformerEncLabelModel, clips: dict[str, np.ndarray]) -> dict[str, Any]:
    """Offset and scale the head so that speaker k is active on ~ACTIVE_SHARE[k] of frames
    (of all chunk settings' frames, for the streaming model; the config's settings restored)."""
    if model.streaming_mode:
        saved = {k: getattr(model.sortformer_modules, k) for k in STREAMING["recipe"]}
        logits = []
        for values in STREAMING.values():
            set_streaming(model, values)
            logits.append(head_logits(model, clips))
        set_streaming(model, saved)
        logits = np.concatenate(logits)
    else:
        logits = head_logits(model, clips)
    centre = np.array([np.quantile(logits[:, k], 1 - s) for k, s in enumerate(ACTIVE_SHARE)])
    scale = LOGIT_SPREAD / float(np.std(logits - centre))
    layer = model.sortformer_modules.single_hidden_to_spks
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.copy_(scale * (layer.bias - torch.from_numpy(centre).float()))
    return {"centre": centre.tolist(), "scale": scale}


def check_stats(preds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every speaker active on some frames and not others; probabilities not all near 0.5."""
    every = np.concatenate([p for name, p in preds.items() if name != "short"])
    active = (every > 0.5).mean(axis=0)
    stats = {
        "active_share": active.round(3).tolist(),
        "mean_distance_from_half": float(np.abs(every - 0.5).mean()),
    }
    print("stats", stats, flush=True)
    assert np.all((active > 0.02) & (active < 0.98)), stats
    assert stats["mean_distance_from_half"] > 0.15, stats
    return stats


def forward_references(
    model: SortformerEncLabelModel, clips: dict[str, np.ndarray], prefix: str, arrays: dict
) -> dict[str, Any]:
    """`model.forward` (B=1) probabilities and the features it ran on, and `diarize()`'s output."""
    records = {}
    features: list[np.ndarray] = []
    hook = model.preprocessor.register_forward_hook(
        lambda _m, _i, out: features.append(out[0][0].detach().numpy().T.copy())
    )
    try:
        for name, samples in clips.items():
            features.clear()
            with torch.no_grad():
                preds = model.forward(torch.from_numpy(samples)[None], torch.tensor([len(samples)]))
            arrays[f"{prefix}{name}/preds"] = preds[0].numpy()
            # the features do not depend on the chunk settings: kept once per clip
            if f"{name}/features" in arrays:
                assert np.array_equal(arrays[f"{name}/features"], features[0]), name
            arrays[f"{name}/features"] = features[0]
            records[name] = {"num_samples": len(samples), "frames": int(preds.shape[1])}
    finally:
        hook.remove()
    lines, tensors = model.diarize(
        audio=list(clips.values()), sample_rate=16000, batch_size=1, include_tensor_outputs=True,
        verbose=False,
    )  # fmt: skip
    model.eval()
    for (name, record), clip_lines, clip_preds in zip(records.items(), lines, tensors, strict=True):
        record["diarize_lines"] = list(clip_lines)
        same = np.array_equal(clip_preds[0].numpy(), arrays[f"{prefix}{name}/preds"])
        record["diarize_preds_equal_forward"] = bool(same)
        if not same:
            arrays[f"{prefix}{name}/diarize_preds"] = clip_preds[0].numpy()
    return records


def make(name: str) -> None:
    torch.manual_seed(SEED)
    config, changed = build_config(name)
    model = SortformerEncLabelModel(cfg=OmegaConf.create(config)).eval()
    clips = load_clips()
    streaming = bool(config.get("streaming_mode"))
    tuning = tune_head(model, {k: v for k, v in clips.items() if k != "short"})
    OUT.mkdir(parents=True, exist_ok=True)
    nemo_path = OUT / f"{name}.nemo"
    model.save_to(str(nemo_path))
    model = SortformerEncLabelModel.restore_from(str(nemo_path), map_location="cpu").eval()

    arrays: dict[str, np.ndarray] = {}
    record: dict[str, Any] = {
        "generated_by": f"python tests/reference/make_sortformer_fixtures.py {name}",
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "checkpoint": f"nvidia/{name}",
        "model_class": TARGET,
        "config_source": f"tests/reference/configs/{name}.yaml (NeMo's training recipe; see its header)",
        "changed": changed,
        "weight_choices": tuning,
        "postprocessing": "NeMo's defaults (PostProcessingParams()): onset 0.5, offset 0.5, "
        "pad_onset 0, pad_offset 0, min_duration_on 0, min_duration_off 0",
        "clips": {k: [list(p) for p in v] for k, v in CLIPS.items()},
        "overlap_at_sample": OVERLAP_AT,
        "streaming_mode": streaming,
    }
    if not streaming:
        record["forward"] = forward_references(model, clips, "", arrays)
        record["stats"] = check_stats({k: arrays[f"{k}/preds"] for k in clips})
    else:
        record["settings"] = {}
        for setting, values in STREAMING.items():
            set_streaming(model, values)
            clips_record = forward_references(model, clips, f"{setting}/", arrays)
            stats = check_stats({k: arrays[f"{setting}/{k}/preds"] for k in clips})
            record["settings"][setting] = {"values": values, "clips": clips_record, "stats": stats}
    record["config"] = OmegaConf.to_container(model.cfg, resolve=True)
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(name, "->", nemo_path, f"{nemo_path.stat().st_size / 1e6:.2f} MB")


def main() -> None:
    names = sys.argv[1:] or ["diar_sortformer_4spk-v1", "diar_streaming_sortformer_4spk-v2"]
    with tempfile.TemporaryDirectory():
        for name in names:
            make(name)


if __name__ == "__main__":
    main()
