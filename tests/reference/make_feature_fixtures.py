"""Record NeMo's audio loading and log-mel features on the test clips.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). Run from the
repository root:

    python tests/reference/make_feature_fixtures.py

Writes tests/fixtures/features/nemo_features.npz and nemo_features.json. Every number in
them comes from NeMo: `AudioSegment.from_file(..., target_sr=16000, channel_selector="average")`
for the samples, and NeMo's `AudioToMelSpectrogramPreprocessor` (eval mode) for the features.
The configs cover what NVIDIA's checkpoints use (80 and 128 mels, per-feature and
all-features normalisation) and the less common branches (exact_pad, no normalisation,
clamp guard, no pre-emphasis, other windows, mag_power 1, pad_to).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nemo
import numpy as np
import torch
from nemo.collections.asr.modules.audio_preprocessing import AudioToMelSpectrogramPreprocessor
from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
OUT = ROOT / "tests" / "fixtures" / "features"

_BASE: dict[str, Any] = {
    "sample_rate": 16000,
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "n_fft": 512,
    "log": True,
    "frame_splicing": 1,
    "dither": 0.0,
    "pad_to": 0,
    "pad_value": 0.0,
}
ALL_CLIPS = [
    "speech_16k_mono.wav",
    "speech_44k_stereo.wav",
    "speech_22k.flac",
    "speech_24k.mp3",
    "speech_48k.ogg",
    "silence_padded_16k.wav",
    "shorter_than_frame_16k.wav",
    "odd_length_16k.wav",
]
SOME_CLIPS = [
    "speech_16k_mono.wav",
    "speech_44k_stereo.wav",
    "silence_padded_16k.wav",
    "shorter_than_frame_16k.wav",
    "odd_length_16k.wav",
]
# name -> (preprocessor config overrides, clips, also record a padded batch)
CONFIGS: dict[str, tuple[dict[str, Any], list[str], bool]] = {
    # nvidia/parakeet-tdt-0.6b-v2 / -v3, canary-1b-flash
    "mel128_per_feature": ({"features": 128, "normalize": "per_feature"}, ALL_CLIPS, False),
    # nvidia/parakeet-ctc-1.1b, parakeet-tdt_ctc-110m, parakeet-rnnt-0.6b
    "mel80_per_feature": ({"features": 80, "normalize": "per_feature"}, ALL_CLIPS, True),
    "mel80_all_features_pad16": (
        {"features": 80, "normalize": "all_features", "pad_to": 16},
        SOME_CLIPS,
        True,
    ),
    "mel64_exact_pad_no_norm": (
        {
            "features": 64,
            "normalize": "NA",
            "exact_pad": True,
            "window": "hamming",
            "window_size": 0.02,
            "mag_power": 1.0,
            "log_zero_guard_type": "clamp",
            "log_zero_guard_value": "tiny",
            "lowfreq": 20,
            "highfreq": 7600,
            "pad_to": 8,
        },
        SOME_CLIPS,
        True,
    ),
    "mel80_no_preemph_blackman": (
        {
            "features": 80,
            "normalize": "per_feature",
            "preemph": None,
            "window": "blackman",
            "n_fft": 1024,
            "log_zero_guard_value": "eps",
        },
        SOME_CLIPS,
        False,
    ),
}


def load_clip(name: str) -> np.ndarray:
    """NeMo's own file loading: soundfile, channel average, librosa (soxr_hq) resampling."""
    segment = AudioSegment.from_file(str(AUDIO / name), target_sr=16000, channel_selector="average")
    return np.asarray(segment.samples, dtype=np.float32)


def run_preprocessor(
    pre: AudioToMelSpectrogramPreprocessor, batch: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Features (B, T, F) channels-last, and valid lengths, for a zero-padded batch."""
    lengths = torch.tensor([len(x) for x in batch], dtype=torch.long)
    padded = torch.zeros(len(batch), int(lengths.max()))
    for i, x in enumerate(batch):
        padded[i, : len(x)] = torch.from_numpy(x)
    with torch.no_grad():
        feats, feat_len = pre(input_signal=padded, length=lengths)
    return feats.transpose(1, 2).numpy().astype(np.float32), feat_len.numpy()


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    samples = {name: load_clip(name) for name in ALL_CLIPS}
    arrays: dict[str, np.ndarray] = {}
    for name, x in samples.items():
        if not name.endswith("16k_mono.wav") and "_16k" not in name:
            arrays[f"samples/{name}"] = x  # only the clips NeMo had to decode or resample

    meta: dict[str, Any] = {
        "generated_by": "python tests/reference/make_feature_fixtures.py",
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "layout": "features are (frames, n_mels) float32 = NeMo's (n_mels, frames) transposed",
        "clips": {name: {"num_samples": len(x)} for name, x in samples.items()},
        "configs": {},
    }
    for config_name, (overrides, clips, batched) in CONFIGS.items():
        cfg = {**_BASE, **overrides}
        pre = AudioToMelSpectrogramPreprocessor(**cfg).eval()
        entry: dict[str, Any] = {"preprocessor": cfg, "clips": {}, "batched": batched}
        # The buffers NeMo stores in checkpoints: (n_fft//2+1, n_mels) filterbank, window.
        arrays[f"{config_name}/filterbank"] = pre.featurizer.fb[0].T.numpy().copy()
        arrays[f"{config_name}/window"] = pre.featurizer.window.numpy().copy()
        for clip in clips:
            feats, feat_len = run_preprocessor(pre, [samples[clip]])
            arrays[f"{config_name}/{clip}"] = feats[0]
            entry["clips"][clip] = {"length": int(feat_len[0]), "frames": int(feats.shape[1])}
        if batched:
            feats, feat_len = run_preprocessor(pre, [samples[c] for c in clips])
            entry["batch_frames"] = int(feats.shape[1])
            for i, clip in enumerate(clips):
                # Keep each item's own frames; check that the rest is pad_value as NeMo promises.
                own = entry["clips"][clip]["frames"]
                assert np.all(feats[i, int(feat_len[i]) :] == cfg["pad_value"])
                arrays[f"{config_name}/batched/{clip}"] = feats[i, :own]
                entry["clips"][clip]["batched_length"] = int(feat_len[i])
        meta["configs"][config_name] = entry
        print(f"{config_name}: {len(clips)} clips")

    np.savez_compressed(OUT / "nemo_features.npz", **arrays)
    (OUT / "nemo_features.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT / 'nemo_features.npz'} ({(OUT / 'nemo_features.npz').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
