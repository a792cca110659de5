"""FastConformer encoder: this project vs NeMo (PyTorch) vs parakeet-mlx, one process.

Needs MLX, the `reference` dependency group (NeMo, torch) and `parakeet-mlx` in one
environment (`pip install parakeet-mlx`), then:

    python benchmarks/encoder.py                 # parakeet-tdt-0.6b geometry, 60 s
    python benchmarks/encoder.py --seconds 20 --layers 4

One random-weight encoder of nvidia/parakeet-tdt-0.6b-v2's geometry (24 layers, d_model
1024, 8 heads, dw_striding x8 with 256 channels, 128 mels, kernel 9) is built with NeMo's
own class; its weights are copied into ours and into parakeet-mlx's encoder. The same 60 s
of features (the speech clip tiled, through our front end) go through all three,
interleaved, after a warm-up each; float32 throughout. MLX runs with mlx-cpu-runtime's
setup (system BLAS, malloc tuning), which parakeet-mlx shares since it runs in this
process. Peak memory: MLX's allocator peak for the two MLX encoders; for NeMo, the peak
resident size above the level before its first run, sampled every 2 ms (freed memory
stays resident afterwards, so later runs show no growth).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import mlx_cpu_runtime.auto

import mlx.core as mx
import numpy as np
import soundfile as sf
import torch
from _common import PeakRSS, published_v2
from nemo.collections.asr.modules.conformer_encoder import ConformerEncoder
from parakeet_mlx.conformer import Conformer as PortConformer
from parakeet_mlx.conformer import ConformerArgs

from mlx_audio_frontend import LogMel, LogMelConfig
from mlx_conformer import Conformer, ConformerConfig
from nemo_mlx_convert import map_module_state

CLIP = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio" / "speech_16k_mono.wav"
PREPROCESSOR = {
    "features": 128,
    "window_size": 0.025,
    "window_stride": 0.01,
    "pad_to": 0,
    "dither": 0.0,
}


def encoder_config(layers: int) -> dict:
    """nvidia/parakeet-tdt-0.6b-v2's published encoder section, `layers` layers, no dropout."""
    config = published_v2()["encoder"]
    config.pop("_target_")
    dropouts = {k: 0.0 for k in config if k.startswith("dropout")}
    return {**config, **dropouts, "n_layers": layers}


def mlx_weights(encoder: torch.nn.Module) -> list[tuple[str, mx.array]]:
    """The encoder's weights in MLX names and layouts, by the converter's own mapping."""
    state = {name: tensor.numpy() for name, tensor in encoder.state_dict().items()}
    return [(k, mx.array(v)) for k, v in map_module_state(state, "encoder.").items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    cfg = encoder_config(args.layers)
    nemo = ConformerEncoder(**cfg).eval()
    weights = mlx_weights(nemo)
    weight_bytes = sum(w.nbytes for _, w in weights)
    ours = Conformer(ConformerConfig.from_nemo(cfg))
    ours.load_weights(weights, strict=True)
    port_args = {k: cfg[k] for k in ConformerArgs.__dataclass_fields__ if k in cfg}
    port = PortConformer(ConformerArgs(**port_args))
    port.load_weights(weights, strict=True)
    port.eval()
    mx.eval(ours.parameters(), port.parameters())

    speech, _ = sf.read(CLIP, dtype="float32")
    audio = np.resize(speech, int(args.seconds * 16000))
    features, _ = LogMel(LogMelConfig.from_nemo(PREPROCESSOR))(audio)
    mx.eval(features)
    torch_features = torch.from_numpy(np.array(features).transpose(0, 2, 1).copy())
    torch_length = torch.tensor([features.shape[1]])

    def run_nemo() -> tuple[float, np.ndarray, int]:
        with PeakRSS() as rss, torch.inference_mode():
            start = time.perf_counter()
            out, _ = nemo(audio_signal=torch_features, length=torch_length)
            elapsed = time.perf_counter() - start
        return elapsed, out[0].T.numpy(), rss.extra

    def run_mlx(model) -> tuple[float, np.ndarray, int]:
        mx.reset_peak_memory()
        base = mx.get_active_memory()
        start = time.perf_counter()
        out, _ = model(features)
        mx.eval(out)
        elapsed = time.perf_counter() - start
        return elapsed, np.array(out[0]), mx.get_peak_memory() - base

    runners = {
        "NeMo (PyTorch)": run_nemo,
        "ours (MLX)": lambda: run_mlx(ours),
        "parakeet-mlx": lambda: run_mlx(port),
    }
    memory: dict[str, int] = dict.fromkeys(runners, 0)
    for name, run in runners.items():  # warm-up; NeMo's first run is the one whose RSS grows
        memory[name] = run()[2]
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            elapsed, outputs[name], extra = run()
            times[name].append(elapsed)
            memory[name] = max(memory[name], extra)

    reference = outputs["NeMo (PyTorch)"]
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"FastConformer encoder, {cfg['n_layers']} layers x d_model {cfg['d_model']}, "
          f"{args.seconds:.0f} s of audio ({features.shape[1]} frames), float32, CPU")  # fmt: skip
    print(f"{platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); mlx {mx.__version__}; {mlx_cpu_runtime.auto.STATUS}")  # fmt: skip
    print(
        f"weights: {weight_bytes / 2**30:.2f} GiB ({sum(w.size for _, w in weights) / 1e6:.0f} M parameters)"
    )
    print(
        f"{'':16s} {'median s':>9s} {'x real time':>12s} {'vs NeMo':>8s} {'peak extra GiB':>15s} {'rel. err':>9s}"
    )
    for name in runners:
        error = np.linalg.norm(outputs[name] - reference) / np.linalg.norm(reference)
        print(f"{name:16s} {median[name]:9.2f} {args.seconds / median[name]:12.1f} "
              f"{median[name] / median['NeMo (PyTorch)']:8.2f} {memory[name] / 2**30:15.2f} {error:9.1e}")  # fmt: skip
    print(f"ours vs parakeet-mlx: {median['parakeet-mlx'] / median['ours (MLX)']:.2f}x faster; "
          f"our peak (weights + extra) / weights: {(weight_bytes + memory['ours (MLX)']) / weight_bytes:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
