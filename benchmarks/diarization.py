"""Sortformer diarization: this project vs NeMo (PyTorch) on the CPU, one process.

Needs MLX and the `reference` dependency group (NeMo, torch) in one environment, then:

    python benchmarks/diarization.py                          # both checkpoints, 60 s
    python benchmarks/diarization.py --seconds 120 --only diar_sortformer_4spk-v1

One random-weight `SortformerEncLabelModel` per checkpoint is built with NeMo's own class from
its recipe in tests/reference/configs/ at full size (FastConformer 18 / 17 x 512, Transformer
18 x 192; no dropout in eval mode); its state dict goes through nemo-mlx-convert's mapping into
ours. The same audio (the espeak-ng speech of `_common.speech`, cut to `--seconds`) goes
through both, audio to speaker probabilities, interleaved, after a warm-up each; float32. The
streaming model runs at `--latency` (the published settings: high = chunk 124, right context 1,
FIFO 124, update period 124, cache 188). Printed: seconds per run, the time per audio hour, the
ratio to NeMo's time, and the relative difference of the probabilities (a sanity check; the
parity tests are tests/test_sortformer_checkpoints.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlx_cpu_runtime.auto  # noqa: F401  (before mlx)

import mlx.core as mx
import numpy as np
import torch
from _common import interleaved, read_wav, speech
from nemo.collections.asr.models import SortformerEncLabelModel
from omegaconf import OmegaConf

from mlx_audio_frontend import LogMel, LogMelConfig
from mlx_diarization import Diarizer, Sortformer
from nemo_mlx_convert.mapping import map_state_dict

CONFIGS = Path(__file__).resolve().parents[1] / "tests" / "reference" / "configs"
TARGET = "nemo.collections.asr.models.sortformer_diar_models.SortformerEncLabelModel"
LATENCY = {  # the published latency settings (see the streaming config's header)
    "high": dict(chunk_len=124, chunk_right_context=1, fifo_len=124,
                 spkcache_update_period=124, spkcache_len=188),
    "low": dict(chunk_len=6, chunk_right_context=7, fifo_len=188,
                spkcache_update_period=144, spkcache_len=188),
}  # fmt: skip


def nemo_model(name: str) -> SortformerEncLabelModel:
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"), resolve=True)
    config = config["model"]
    config["target"] = TARGET
    if "model_defaults" not in config:  # the v1 recipe keeps them at the top (see its header)
        config["model_defaults"] = {k: config[k] for k in ("fc_d_model", "tf_d_model")}
    torch.manual_seed(0)
    return SortformerEncLabelModel(cfg=OmegaConf.create(config)).eval()


def ours(model: SortformerEncLabelModel) -> Diarizer:
    nemo_config = OmegaConf.to_container(model.cfg, resolve=True)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    weights = {
        k: mx.array(np.ascontiguousarray(v))
        for k, v in map_state_dict(state, TARGET).tensors.items()
    }
    sortformer = Sortformer.from_nemo(nemo_config, weights)
    frontend = LogMel(LogMelConfig.from_nemo(nemo_config["preprocessor"]))
    return Diarizer(sortformer, frontend, sortformer.config.streaming)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", choices=sorted(LATENCY), default="high")
    parser.add_argument(
        "--only", choices=["diar_sortformer_4spk-v1", "diar_streaming_sortformer_4spk-v2"]
    )
    args = parser.parse_args()
    samples = read_wav(speech(max(1.0, args.seconds / 60))).astype(np.float32) / 32768
    samples = samples[: int(args.seconds * 16000)]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name in (
        [args.only]
        if args.only
        else ["diar_sortformer_4spk-v1", "diar_streaming_sortformer_4spk-v2"]
    ):
        model = nemo_model(name)
        diarizer = ours(model)
        if model.streaming_mode:
            for key, value in LATENCY[args.latency].items():
                setattr(model.sortformer_modules, key, value)
            diarizer.streaming = diarizer.streaming.with_chunks(**LATENCY[args.latency])

        def run_nemo(model=model):
            with torch.inference_mode():
                preds = model.forward(torch.from_numpy(samples)[None], torch.tensor([len(samples)]))
            return preds[0].numpy()

        times, outputs = interleaved(
            {"nemo": run_nemo, "ours": lambda d=diarizer: d.probabilities(samples)}, args.repeats
        )
        nemo_time, our_time = times["nemo"], times["ours"]
        nemo_out, our_out = outputs["nemo"], outputs["ours"]
        difference = np.linalg.norm(our_out - nemo_out) / np.linalg.norm(nemo_out)
        hours = args.seconds / 3600
        mode = f"streaming ({args.latency} latency)" if model.streaming_mode else "offline"
        print(f"{name}, {mode}, {args.seconds:g} s: NeMo {nemo_time:.2f} s "
              f"({nemo_time / hours / 60:.1f} min per audio hour), ours {our_time:.2f} s "
              f"({our_time / hours / 60:.1f} min per audio hour, {our_time / nemo_time:.2f}x NeMo's time); "
              f"relative difference {difference:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
