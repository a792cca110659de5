"""Where the time goes: features, encoder and greedy decoding, ours and NeMo's, per stage.

    python benchmarks/stages.py                         # CPU, float32, 60 s and 32 clips
    python benchmarks/stages.py --device gpu --dtype bfloat16
    python benchmarks/stages.py --systems nemo --repeats 1

The model and audio of `benchmarks/e2e.py` (run it once first); like e2e.py, it needs MLX,
this workspace and the `reference` group (NeMo, torch) in one environment. Each system runs
in its own worker process of this interpreter, started as e2e.py starts its workers (the
helpers in `_common.py`): on CUDA, torch cannot load its own cuDNN in a process where MLX has
loaded the system's ("cuDNN version incompatibility"). The systems run one after the other,
each alone on the machine; a worker sends each input's stage times as it finishes them, and
one that dies is reported as such in the table for the inputs it had not finished, and the
next system goes on.

Each stage is timed on its own, with a device sync at its end (`mx.eval`,
`torch.cuda.synchronize`), median of `--repeats` after a warm-up: the 60 s clip alone, and the
first 32 of e2e's clips as one padded batch (features: one front-end call over the padded
samples, as the app does). The sum of the stages is close to, not equal to, e2e's wall time
(which also has text assembly and, for a batch, no syncs between stages).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from _common import CACHE, SAMPLE_RATE, failure, receive, result_channel, send, start_worker
from e2e import MODEL, audio_set

SYSTEMS = ("ours", "nemo")


def inputs() -> dict[str, list[np.ndarray]]:
    """The 60 s clip, and the first 32 of e2e's clips (sorted by length, as one batch)."""
    clips = sorted(audio_set("clips")[:32], key=len)
    return {"60 s, batch 1": audio_set("1min"), "32 clips, batch 32": clips}


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
    model = parakeet.load(args.model, dtype=args.dtype, verbose=False, cache_dir=CACHE / "models")  # fmt: skip
    sync = lambda: mx.synchronize()  # noqa: E731
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
        yield name, (t_feat, t_enc, t_dec)


def nemo(args, inputs):
    import torch
    from nemo.collections.asr.models import ASRModel

    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    model = ASRModel.restore_from(str(args.model), map_location=device).eval()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if dtype != torch.float32:
        for part in (model.encoder, model.decoder, model.joint):
            part.to(dtype)
    sync = torch.cuda.synchronize if args.device == "gpu" else (lambda: None)
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
            yield name, (t_feat, t_enc, t_dec)


def serve(args: argparse.Namespace) -> None:
    """Worker: one system's stage times, one message per input as it is done."""
    channel = result_channel()
    for name, times in {"ours": ours, "nemo": nemo}[args.worker](args, inputs()):
        send(channel, {"input": name, "times": times})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--model", type=Path, default=MODEL, help="a .nemo (default: e2e.py's)")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(args)
        return
    if not args.model.exists():
        parser.error(f"{args.model} does not exist: run benchmarks/e2e.py once first, it builds it")
    audio = inputs()  # also writes e2e's audio cache before any worker reads it
    seconds = {name: sum(len(a) for a in clips) / SAMPLE_RATE for name, clips in audio.items()}
    print(f"stages, {args.device}, {args.dtype}; seconds (share of the sum)")
    print(f"{'input':20s} {'system':6s} {'features':>16s} {'encoder':>16s} {'decoding':>16s} {'sum':>8s} {'x real time':>11s}", flush=True)  # fmt: skip
    for system in args.systems:
        proc = start_worker(__file__, "--worker", system, "--device", args.device, "--dtype", args.dtype,
                            "--repeats", str(args.repeats), "--model", str(args.model))  # fmt: skip
        proc.stdin.close()
        done = set()
        while (result := receive(proc)) is not None:
            name, times = result["input"], result["times"]
            done.add(name)
            total = sum(times)
            cells = " ".join(f"{t:8.3f} ({t / total:4.0%})" for t in times)
            print(f"{name:20s} {system:6s} {cells} {total:8.3f} {seconds[name] / total:11.1f}", flush=True)  # fmt: skip
        for name in (n for n in audio if n not in done):  # and the next system goes on
            print(f"{name:20s} {system:6s} failed: {failure(proc)}", flush=True)
        proc.wait()


if __name__ == "__main__":
    main()
