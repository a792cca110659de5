"""Where the time goes: features, encoder and greedy decoding, ours and NeMo's, per stage.

    python benchmarks/stages.py                         # CPU, float32, 60 s and 32 clips
    python benchmarks/stages.py --device gpu --dtype bfloat16

The model and audio of `benchmarks/e2e.py` (run it once first). Each stage is timed on its
own, with a device sync at its end (`mx.eval`, `torch.cuda.synchronize`), median of
`--repeats` after a warm-up: the 60 s clip alone, and the first 32 of e2e's clips as one
padded batch (features: one front-end call over the padded samples, as the app does).
The sum of the stages is close to, not equal to, e2e's wall time (which also has text
assembly and, for a batch, no syncs between stages).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _common import CACHE, SAMPLE_RATE
from e2e import MODEL, audio_set


def timed(fn, sync, repeats: int):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def ours(args, inputs):
    import mlx_cpu_runtime.auto  # noqa: F401

    import mlx.core as mx

    import nemo_mlx_parakeet as parakeet

    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    model = parakeet.load(MODEL, dtype=args.dtype, verbose=False, cache_dir=CACHE / "models")
    sync = lambda: mx.synchronize()  # noqa: E731
    rows = {}
    for name, audio in inputs.items():
        # As the app does it: one front-end call over the batch's zero-padded samples, padded
        # to the frame count the app pads a batch to (a few sizes on a GPU).
        lengths = [model.frontend.frame_count(len(a)) for a in audio]
        frames = model._padded_frames(max(lengths))
        width = max(frames * model.frontend.config.hop_length, *(len(a) for a in audio))
        samples = np.zeros((len(audio), width), dtype=np.float32)
        for row, a in enumerate(audio):
            samples[row, : len(a)] = a

        def features(samples=samples, audio=audio):
            out = model.frontend(samples, [len(a) for a in audio])[0]
            mx.eval(out)
            return out

        padded = features()[:, :frames].astype(model.dtype)
        length = mx.array(lengths)

        def encoder(padded=padded, length=length):
            out = model.encoder(padded, length)
            mx.eval(out)
            return out

        t_feat, _ = timed(features, sync, args.repeats)
        t_enc, (encoded, encoded_len) = timed(encoder, sync, args.repeats)
        t_dec, _ = timed(lambda e=encoded, n=encoded_len: model.transducer.greedy(e, n), sync, args.repeats)  # fmt: skip
        rows[name] = (t_feat, t_enc, t_dec)
    return rows


def nemo(args, inputs):
    import torch
    from nemo.collections.asr.models import ASRModel

    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    model = ASRModel.restore_from(str(MODEL), map_location=device).eval()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if dtype != torch.float32:
        for part in (model.encoder, model.decoder, model.joint):
            part.to(dtype)
    sync = torch.cuda.synchronize if args.device == "gpu" else (lambda: None)
    rows = {}
    with torch.inference_mode():
        for name, audio in inputs.items():
            longest = max(len(a) for a in audio)
            signal = np.zeros((len(audio), longest), dtype=np.float32)
            for row, a in enumerate(audio):
                signal[row, : len(a)] = a
            signal = torch.from_numpy(signal).to(device)
            length = torch.tensor([len(a) for a in audio], device=device)
            t_feat, (feats, feat_len) = timed(
                lambda s=signal, n=length: model.preprocessor(input_signal=s, length=n), sync, args.repeats
            )  # fmt: skip
            t_enc, (enc, enc_len) = timed(
                lambda f=feats, n=feat_len: model.encoder(audio_signal=f.to(dtype), length=n), sync, args.repeats
            )  # fmt: skip
            t_dec, _ = timed(
                lambda e=enc, n=enc_len: model.decoding.rnnt_decoder_predictions_tensor(encoder_output=e, encoded_lengths=n),
                sync, args.repeats,
            )  # fmt: skip
            rows[name] = (t_feat, t_enc, t_dec)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", nargs="+", default=["ours", "nemo"])
    args = parser.parse_args()
    clips = sorted(audio_set("clips")[:32], key=len)
    inputs = {"60 s, batch 1": audio_set("1min"), "32 clips, batch 32": clips}
    seconds = {name: sum(len(a) for a in audio) / SAMPLE_RATE for name, audio in inputs.items()}
    print(f"stages, {args.device}, {args.dtype}; seconds (share of the sum)")
    print(f"{'input':20s} {'system':6s} {'features':>16s} {'encoder':>16s} {'decoding':>16s} {'sum':>8s} {'x real time':>11s}")  # fmt: skip
    for system in args.systems:
        rows = {"ours": ours, "nemo": nemo}[system](args, inputs)
        for name, times in rows.items():
            total = sum(times)
            cells = " ".join(f"{t:8.3f} ({t / total:4.0%})" for t in times)
            print(f"{name:20s} {system:6s} {cells} {total:8.3f} {seconds[name] / total:11.1f}")


if __name__ == "__main__":
    main()
