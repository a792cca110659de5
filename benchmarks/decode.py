"""Greedy TDT decoding: this project vs NeMo's greedy_batch, same weights and encoder frames.

Needs MLX and the `reference` dependency group in one environment:

    python benchmarks/decode.py

A random-weight prediction network and joint of nvidia/parakeet-tdt-0.6b-v2's geometry
(vocabulary 1024, pred/joint hidden 640, two LSTM layers as the published config has,
durations 0-4) is built with
NeMo's classes and copied into ours. The joint's output layer is scaled and blank biased
so that the decoder emits about one token per three frames, as on speech, instead of
random weights' degenerate all-blank or all-token output. Encoder frames are random, of
d_model 1024, 60 s worth (750 frames) per utterance; batch 1 and batch 16 (lengths spread
from 30 to 60 s). Runs are interleaved after a warm-up; the token ids must agree. "ours" is
the default decoder (on the CPU the native loop, mlx-transducer's cpu_greedy.py); "compiled"
the same decoder with `kernel = False` (the compiled MLX step), for the A/B.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

import mlx.core as mx
import numpy as np
import torch
from nemo.collections.asr.modules import rnnt
from nemo.collections.asr.parts.submodules.rnnt_greedy_decoding import GreedyBatchedTDTInfer

from mlx_transducer import Transducer, TransducerConfig
from nemo_mlx_convert.mapping import map_state_dict

VOCAB, D_MODEL, HIDDEN, DURATIONS = 1024, 1024, 640, [0, 1, 2, 3, 4]
LSTM_LAYERS = 2  # parakeet-tdt-0.6b-v2 / -v3 (tests/reference/configs: pred_rnn_layers 2)
FRAMES_PER_SECOND = 12.5  # 8x subsampling of 10 ms frames


def build() -> tuple[rnnt.RNNTDecoder, rnnt.RNNTJoint, Transducer]:
    torch.manual_seed(0)
    decoder = rnnt.RNNTDecoder(
        prednet={"pred_hidden": HIDDEN, "pred_rnn_layers": LSTM_LAYERS, "dropout": 0.2},
        vocab_size=VOCAB,
        blank_as_pad=True,
    ).eval()
    joint = rnnt.RNNTJoint(
        jointnet={
            "joint_hidden": HIDDEN,
            "activation": "relu",
            "encoder_hidden": D_MODEL,
            "pred_hidden": HIDDEN,
            "dropout": 0.2,
        },
        num_classes=VOCAB,
        num_extra_outputs=len(DURATIONS),
    ).eval()
    with torch.no_grad():
        joint.joint_net[-1].weight.mul_(8.0)
        joint.joint_net[-1].bias[VOCAB] += 6.0
    config = TransducerConfig(
        vocab_size=VOCAB, pred_hidden=HIDDEN, pred_rnn_layers=LSTM_LAYERS, joint_hidden=HIDDEN, encoder_hidden=D_MODEL,
        durations=tuple(DURATIONS), max_symbols=10,
    )  # fmt: skip
    ours = Transducer(config)
    state = {f"decoder.{k}": v.numpy() for k, v in decoder.state_dict().items()}
    state |= {f"joint.{k}": v.numpy() for k, v in joint.state_dict().items()}
    mapped = map_state_dict(state, "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel")
    ours.load_weights([(k, mx.array(v)) for k, v in mapped.tensors.items()], strict=True)
    mx.eval(ours.parameters())
    return decoder, joint, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    decoder, joint, ours = build()
    infer = GreedyBatchedTDTInfer(decoder, joint, blank_index=VOCAB, durations=DURATIONS, max_symbols_per_step=10,
                                  include_duration=True, use_cuda_graph_decoder=False)  # fmt: skip
    frames = int(args.seconds * FRAMES_PER_SECOND)
    rng = np.random.default_rng(0)
    print(f"greedy TDT decoding, vocabulary {VOCAB}, hidden {HIDDEN}, float32, CPU; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), mlx {mx.__version__}")  # fmt: skip
    print(
        f"{'batch':>5s} {'audio s':>8s} {'NeMo s':>8s} {'ours s':>8s} {'ours/NeMo':>10s} "
        f"{'compiled s':>10s} {'tokens':>7s} {'same ids':>9s}"
    )
    decoder = ours.greedy_decoder()
    for batch in (1, 16):
        lengths = (
            np.full(batch, frames)
            if batch == 1
            else np.linspace(frames // 2, frames, batch).astype(int)
        )
        encoded = rng.normal(size=(batch, frames, D_MODEL)).astype(np.float32)
        torch_in, torch_len = (
            torch.from_numpy(encoded.transpose(0, 2, 1).copy()),
            torch.from_numpy(lengths),
        )
        mlx_in, mlx_len = mx.array(encoded), mx.array(lengths)

        def run_nemo(x=torch_in, n=torch_len):
            with torch.inference_mode():
                return [
                    h.y_sequence.tolist() for h in infer(encoder_output=x, encoded_lengths=n)[0]
                ]

        def run_ours(x=mlx_in, n=mlx_len, kernel=True):
            decoder.kernel = kernel
            return [h.ids for h in decoder(x, n)]

        run_nemo(), run_ours(), run_ours(kernel=False)
        nemo_times, our_times, compiled_times = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            nemo_ids = run_nemo()
            nemo_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            our_ids = run_ours()
            our_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            compiled_ids = run_ours(kernel=False)
            compiled_times.append(time.perf_counter() - start)
        nemo_t, ours_t = statistics.median(nemo_times), statistics.median(our_times)
        compiled_t = statistics.median(compiled_times)
        audio = float(lengths.sum()) / FRAMES_PER_SECOND
        tokens = sum(len(ids) for ids in our_ids)
        same = our_ids == nemo_ids and compiled_ids == nemo_ids
        print(f"{batch:5d} {audio:8.0f} {nemo_t:8.3f} {ours_t:8.3f} {ours_t / nemo_t:10.2f} "
              f"{compiled_t:10.3f} {tokens:7d} {same!s:>9s}")  # fmt: skip


if __name__ == "__main__":
    main()
