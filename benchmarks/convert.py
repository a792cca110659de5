"""Converting a parakeet-tdt-0.6b-sized `.nemo`: wall time and peak memory of the converter.

Needs the `reference` dependency group (NeMo, torch) to build the model once:

    python benchmarks/convert.py                 # builds .benchmarks-cache/tdt-0.6b.nemo once

A random-weight EncDecRNNTBPEModel of nvidia/parakeet-tdt-0.6b-v2's geometry (FastConformer
24 x 1024, 128 mels, prediction net and joint 640, vocabulary 1024, TDT durations 0-4) is
built with NeMo's classes and saved with `save_to` into the git-ignored cache directory.
Then `nemo-mlx-convert` runs in a fresh process (no torch imported there), timed from
start to exit, its peak resident memory read from the kernel (`ru_maxrss` of the child).
"""

from __future__ import annotations

import argparse
import random
import resource
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".benchmarks-cache"


def build(path: Path) -> None:
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        words = [
            "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
            for _ in range(5000)
        ]
        text.write_text(
            "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(20000))
        )
        create_spt_model(str(text), vocab_size=1024, sample_size=-1, do_lower_case=True, output_dir=tmp,
                         tokenizer_type="bpe")  # fmt: skip
        durations = [0, 1, 2, 3, 4]
        cfg = {
            "sample_rate": 16000,
            "tokenizer": {"dir": tmp, "type": "bpe"},
            "preprocessor": {
                "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                "features": 128,
                "window_size": 0.025,
                "window_stride": 0.01,
                "n_fft": 512,
                "normalize": "per_feature",
                "dither": 0.0,
                "pad_to": 0,
            },
            "encoder": {
                "_target_": "nemo.collections.asr.modules.ConformerEncoder",
                "feat_in": 128,
                "n_layers": 24,
                "d_model": 1024,
                "n_heads": 8,
                "subsampling": "dw_striding",
                "subsampling_factor": 8,
                "subsampling_conv_channels": 256,
                "conv_kernel_size": 9,
                "ff_expansion_factor": 4,
                "self_attention_model": "rel_pos",
                "xscaling": True,
                "untie_biases": True,
            },
            "model_defaults": {
                "enc_hidden": 1024,
                "pred_hidden": 640,
                "joint_hidden": 640,
                "tdt_durations": durations,
            },
            "decoder": {
                "_target_": "nemo.collections.asr.modules.RNNTDecoder",
                "blank_as_pad": True,
                "prednet": {"pred_hidden": 640, "pred_rnn_layers": 2, "dropout": 0.2},
            },
            "joint": {
                "_target_": "nemo.collections.asr.modules.RNNTJoint",
                "num_extra_outputs": len(durations),
                "jointnet": {
                    "joint_hidden": 640,
                    "activation": "relu",
                    "dropout": 0.2,
                    "encoder_hidden": 1024,
                    "pred_hidden": 640,
                },
            },
            "loss": {
                "loss_name": "tdt",
                "tdt_kwargs": {"durations": durations, "sigma": 0.02, "omega": 0.1},
            },
            "decoding": {
                "strategy": "greedy_batch",
                "model_type": "tdt",
                "durations": durations,
                "greedy": {"max_symbols": 10},
            },
            "optim": None,
        }
        model = EncDecRNNTBPEModel(cfg=OmegaConf.create(cfg)).eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=CACHE / "tdt-0.6b.nemo")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    if not args.model.exists():
        print(f"building {args.model} with NeMo (once) ...", file=sys.stderr)
        build(args.model)
    size = args.model.stat().st_size
    with tempfile.TemporaryDirectory(dir=CACHE) as out:
        command = [sys.executable, "-m", "nemo_mlx_convert.cli", str(args.model), f"{out}/model",
                   "--dtype", args.dtype, "--quiet"]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kilobytes on Linux
    if result.returncode != 0:
        sys.exit(result.stderr.strip())
    print(result.stdout.strip())
    print(f"checkpoint {size / 2**30:.2f} GiB -> {args.dtype}: {elapsed:.1f} s wall, "
          f"peak RSS {peak / 2**30:.2f} GiB = {peak / size:.2f}x the checkpoint")  # fmt: skip


if __name__ == "__main__":
    main()
