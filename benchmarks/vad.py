"""Frame VAD (MarbleNet): this project vs NeMo (PyTorch) on the CPU, one process.

Needs MLX and the `reference` dependency group (NeMo, torch) in one environment, then:

    python benchmarks/vad.py                    # 10 min of speech
    python benchmarks/vad.py --seconds 3600

A random-weight `EncDecFrameClassificationModel` is built with NeMo's own class from
Frame_VAD_Multilingual_MarbleNet_v2.0's published config (tests/reference/configs/, as the
fixture script builds it, at its real size: ~91K parameters); its state dict goes through
nemo-mlx-convert's mapping into ours. The same audio (the espeak-ng speech of
`_common.speech`, cut to `--seconds`) goes through both, samples to per-frame speech
probabilities (NeMo: its preprocessor, encoder and decoder, then the softmax, as
`generate_vad_frame_pred` does), interleaved, after a warm-up each; float32. Printed: seconds
per run, the time per audio hour, the ratio to NeMo's time and the probabilities' relative
difference (a sanity check; the parity tests are tests/test_frame_vad_fixture.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mlx_cpu_runtime.auto  # noqa: F401  (before mlx)

import mlx.core as mx
import numpy as np
import torch
from _common import interleaved, read_wav, speech
from nemo.collections.asr.models import EncDecFrameClassificationModel
from omegaconf import OmegaConf

from mlx_frame_vad import MODEL_CLASS, FrameVAD
from nemo_mlx_convert.mapping import map_state_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
import make_vad_fixtures  # the published config, as the fixture uses it


def nemo_model() -> EncDecFrameClassificationModel:
    torch.manual_seed(0)
    config = make_vad_fixtures.published_config()
    return EncDecFrameClassificationModel(cfg=OmegaConf.create(config)).eval()


def ours(model: EncDecFrameClassificationModel) -> FrameVAD:
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    weights = {
        k: mx.array(np.ascontiguousarray(v))
        for k, v in map_state_dict(state, MODEL_CLASS).tensors.items()
    }
    return FrameVAD.from_nemo(OmegaConf.to_container(model.cfg, resolve=True), weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    samples = read_wav(speech(max(1.0, args.seconds / 60))).astype(np.float32) / 32768
    samples = samples[: int(args.seconds * 16000)]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = nemo_model()
    vad = ours(model)

    def run_nemo() -> np.ndarray:
        with torch.inference_mode():
            logits = model(input_signal=torch.from_numpy(samples)[None],
                           input_signal_length=torch.tensor([len(samples)]))  # fmt: skip
        return torch.softmax(logits, dim=-1)[0, :, 1].numpy()

    runs = {"nemo": run_nemo, "ours": lambda: vad.speech_probabilities(samples)}
    times, outputs = interleaved(runs, args.repeats)
    nemo_time, our_time = times["nemo"], times["ours"]
    difference = np.linalg.norm(outputs["ours"] - outputs["nemo"]) / np.linalg.norm(outputs["nemo"])
    hours = args.seconds / 3600
    print(f"frame VAD (MarbleNet), {args.seconds:g} s, median of {args.repeats}: NeMo "
          f"{nemo_time:.2f} s ({nemo_time / hours:.1f} s per audio hour), ours {our_time:.2f} s "
          f"({our_time / hours:.1f} s per audio hour, {our_time / nemo_time:.2f}x NeMo's time); "
          f"relative difference {difference:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
