"""Log-mel front end on long audio: this project vs NeMo's preprocessor, one process, CPU.

Needs MLX and the `reference` dependency group (NeMo, torch) in one environment:

    python benchmarks/logmel.py --minutes 60
    MLX_CPU_BLAS=off MLX_CPU_MALLOC=off python benchmarks/logmel.py --minutes 60

Both run the nvidia/parakeet-tdt-0.6b-v2 preprocessor config (128 mels, per-feature
normalisation) on the same float32 signal: the speech clip tiled to the requested length
with a little noise, so that no two frames are identical; ours on both of its CPU paths
(the native pass, `cpu_logmel`, and MLX's, `MLX_AUDIO_FRONTEND_NATIVE=off`). Runs are
interleaved (NeMo, ours native, ours MLX, NeMo, ...) after one warm-up each; the table gives
the median wall time, the real-time factor (audio seconds per second of compute) and our
time as a fraction of NeMo's. The outputs are compared with NeMo's as a check that the same
work was done.

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


PATHS = {"native": "on", "MLX": "off"}  # MLX_AUDIO_FRONTEND_NATIVE: our two CPU paths


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    signal = make_signal(args.minutes)
    seconds = signal.shape[0] / 16000
    pre = AudioToMelSpectrogramPreprocessor(**CONFIG).eval()
    frontend = LogMel(LogMelConfig.from_nemo(CONFIG))

    def ours(path: str, audio: np.ndarray) -> tuple[float, mx.array]:
        os.environ["MLX_AUDIO_FRONTEND_NATIVE"] = PATHS[path]
        return time_ours(frontend, audio)

    time_nemo(pre, signal[: 16000 * 30])  # warm-up
    for path in PATHS:
        ours(path, signal[: 16000 * 30])
    times: dict[str, list[float]] = {"NeMo": [], **{path: [] for path in PATHS}}
    features, peaks = {}, {}
    for _ in range(args.repeats):
        t, nemo_features = time_nemo(pre, signal)
        times["NeMo"].append(t)
        for path in PATHS:
            t, features[path] = ours(path, signal)
            peaks[path] = mx.get_peak_memory()
            times[path].append(t)

    nemo = nemo_features[0].T.numpy()
    nemo_t = statistics.median(times["NeMo"])
    print(f"log-mel, {seconds / 60:.0f} min of 16 kHz audio, 128 mels, per_feature; CPU float32")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); mlx {mx.__version__}; "
          f"{mlx_cpu_runtime.auto.STATUS}")  # fmt: skip
    signal_mb = signal.nbytes / 2**20
    print(f"{'':14s} {'median s':>9s} {'x real time':>12s} {'/ NeMo time':>12s} "
          f"{'max |x - NeMo|':>15s} {'MLX peak beyond the input MB':>29s}")  # fmt: skip
    print(f"{'NeMo':14s} {nemo_t:9.2f} {seconds / nemo_t:12.0f}")
    for path in PATHS:
        t = statistics.median(times[path])
        diff = np.abs(np.array(features[path][0]) - nemo).max()
        peak = peaks[path] / 2**20 - signal_mb
        print(f"{'ours, ' + path:14s} {t:9.2f} {seconds / t:12.0f} {t / nemo_t:12.2f} "
              f"{diff:15.1e} {peak:29.0f}")  # fmt: skip
    print(
        f"(output {features['native'].nbytes / 2**20:.0f} MB; the native pass writes it "
        "in numpy, then one copy into MLX)"
    )


if __name__ == "__main__":
    main()
