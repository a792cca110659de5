"""Log-mel front end on long audio: this project vs NeMo's preprocessor, one process, CPU.

Needs MLX and the `reference` dependency group (NeMo, torch) in one environment:

    python benchmarks/logmel.py --minutes 60
    MLX_CPU_BLAS=off MLX_CPU_MALLOC=off python benchmarks/logmel.py --minutes 60

Both run the nvidia/parakeet-tdt-0.6b-v2 preprocessor config (128 mels, per-feature
normalisation) on the same float32 signal: the speech clip tiled to the requested length
with a little noise, so that no two frames are identical. Runs are interleaved (NeMo, ours,
NeMo, ours, ...) after one warm-up each; the table gives the median wall time, the real-time
factor (audio seconds per second of compute) and our time as a fraction of NeMo's. The two
outputs are compared as a check that the same work was done.

On Linux, importing the front end runs mlx-cpu-runtime, which loads a system BLAS and
tunes malloc before MLX loads (the printed status says what it did); the environment
variables above turn both off, for the comparison.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import mlx_cpu_runtime.auto  # loads a system BLAS and tunes malloc before mlx loads

import mlx.core as mx
import numpy as np
import soundfile as sf
import torch
from nemo.collections.asr.modules.audio_preprocessing import AudioToMelSpectrogramPreprocessor

from mlx_audio_frontend import LogMel, LogMelConfig

CLIP = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio" / "speech_16k_mono.wav"
CONFIG = {
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 128,
    "n_fft": 512,
    "log": True,
    "frame_splicing": 1,
    "dither": 0.0,
    "pad_to": 0,
    "pad_value": 0.0,
}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="audio length (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    return parser.parse_args()


def make_signal(minutes: float) -> np.ndarray:
    speech, rate = sf.read(CLIP, dtype="float32")
    assert rate == 16000
    total = int(minutes * 60 * rate)
    tiled = np.resize(speech, total)
    noise = np.random.default_rng(0).normal(scale=1e-3, size=total).astype(np.float32)
    return tiled + noise


def time_nemo(
    pre: AudioToMelSpectrogramPreprocessor, signal: np.ndarray
) -> tuple[float, np.ndarray]:
    x = torch.from_numpy(signal)[None]
    length = torch.tensor([signal.shape[0]])
    start = time.perf_counter()
    with torch.no_grad():
        features, _ = pre(input_signal=x, length=length)
    return time.perf_counter() - start, features


def time_ours(frontend: LogMel, signal: np.ndarray) -> tuple[float, mx.array]:
    x = mx.array(signal)
    mx.eval(x)
    mx.reset_peak_memory()
    start = time.perf_counter()
    features, _ = frontend(x)
    mx.eval(features)
    return time.perf_counter() - start, features


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    signal = make_signal(args.minutes)
    seconds = signal.shape[0] / 16000
    pre = AudioToMelSpectrogramPreprocessor(**CONFIG).eval()
    frontend = LogMel(LogMelConfig.from_nemo(CONFIG))

    time_nemo(pre, signal[: 16000 * 30])  # warm-up
    time_ours(frontend, signal[: 16000 * 30])
    nemo_times, our_times = [], []
    for _ in range(args.repeats):
        t, nemo_features = time_nemo(pre, signal)
        nemo_times.append(t)
        t, our_features = time_ours(frontend, signal)
        our_times.append(t)

    diff = np.abs(np.array(our_features[0]) - nemo_features[0].T.numpy()).max()
    nemo_t, ours_t = statistics.median(nemo_times), statistics.median(our_times)
    print(f"log-mel, {seconds / 60:.0f} min of 16 kHz audio, 128 mels, per_feature; CPU float32")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); mlx {mx.__version__}; "
          f"{mlx_cpu_runtime.auto.STATUS}")  # fmt: skip
    print(f"{'':12s} {'median s':>9s} {'x real time':>12s}")
    print(f"{'NeMo':12s} {nemo_t:9.2f} {seconds / nemo_t:12.0f}")
    print(f"{'ours (MLX)':12s} {ours_t:9.2f} {seconds / ours_t:12.0f}")
    print(f"ours / NeMo time: {ours_t / nemo_t:.2f}   max |ours - NeMo| = {diff:.1e}")
    signal_mb = signal.nbytes / 2**20
    output_mb = our_features.nbytes / 2**20
    print(f"our peak MLX memory beyond the input: {mx.get_peak_memory() / 2**20 - signal_mb:.0f} MB "
          f"(input {signal_mb:.0f} MB, output {output_mb:.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
