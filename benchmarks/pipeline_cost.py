"""What `--vad` and `--diarize` add to a transcription: the 10-minute benchmark input, CPU.

Needs MLX and the `reference` dependency group (NeMo builds the random-weight models once):

    python benchmarks/pipeline_cost.py
    python benchmarks/pipeline_cost.py --repeats 1 --minutes 1
    python benchmarks/pipeline_cost.py --repeats 1 --settings both     # plain and both only

The ASR model is e2e.py's (parakeet-tdt-0.6b-v2's published structure, random weights, tokens
at the rate of speech); the frame VAD is a random-weight MarbleNet of
Frame_VAD_Multilingual_MarbleNet_v2.0's published config (vad.py's) with its output layer
biased towards speech so that it keeps most of the input, as a trained VAD does on read
speech; the diarizer a random-weight diar_sortformer_4spk-v1 of its recipe (diarization.py's).
All three are saved as `.nemo` into the git-ignored `.benchmarks-cache/` and loaded through
the Python API, as `parakeet FILE --vad VAD --diarize SORTFORMER` loads them. Each setting
(plain, `vad=`, `diarize=`, both) transcribes the same file, interleaved, after a warm-up
on the 1-minute input, median of `--repeats`. Printed: seconds, the ratio to plain, and the
share of the input the VAD kept (its cost depends on that: the encoder skips what it drops).
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx_cpu_runtime.auto  # noqa: F401  (before mlx)

import torch
from _common import CACHE, build_tdt, speech
from diarization import nemo_model as sortformer_model
from vad import nemo_model as vad_model

import nemo_mlx_parakeet as parakeet
from nemo_mlx_parakeet.diarization import load_diarizer
from nemo_mlx_parakeet.vad import load_vad

ASR = CACHE / "tdt-0.6b-speechrate.nemo"  # e2e.py's model
VAD = CACHE / "vad-marblenet-speechy.nemo"
DIARIZER = CACHE / "diar_sortformer_4spk-v1-random.nemo"
SPEECH_BIAS = 4.0  # added to the speech class's output bias: most frames speech


def build_models() -> None:
    if not ASR.exists():
        print(f"building {ASR} with NeMo (once) ...", flush=True)
        build_tdt(ASR, speechlike=True, speech_rate=True)
    if not VAD.exists():
        model = vad_model()
        with torch.no_grad():
            model.decoder.last_linear_layer.bias[1] += SPEECH_BIAS
        model.save_to(str(VAD))
    if not DIARIZER.exists():
        sortformer_model("diar_sortformer_4spk-v1").save_to(str(DIARIZER))


def kept_share(model: parakeet.Parakeet, vad, path) -> float:
    """The share of the input inside the VAD's speech segments."""
    signal = model.load_audio(path)
    segments = vad.segments(signal)
    kept = sum(min(s.end, len(signal) / model.sample_rate) - max(s.start, 0.0) for s in segments)
    return kept / (len(signal) / model.sample_rate)


SETTINGS = ("plain", "vad", "diarize", "both")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                        help="which to run (plain is always run: the others are its ratios)")  # fmt: skip
    args = parser.parse_args()
    build_models()
    path, warm = speech(args.minutes), speech(1)
    model = parakeet.load(str(ASR), verbose=False)
    vad, diarizer = load_vad(str(VAD), verbose=False), load_diarizer(str(DIARIZER), verbose=False)
    every = {"plain": {}, "vad": {"vad": vad}, "diarize": {"diarize": diarizer},
             "both": {"vad": vad, "diarize": diarizer}}  # fmt: skip
    settings = {name: every[name] for name in SETTINGS if name == "plain" or name in args.settings}
    for options in settings.values():
        model.transcribe(warm, **options)  # loads the VAD / diarizer, compiles
    times: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(args.repeats):
        for name, options in settings.items():
            start = time.perf_counter()
            model.transcribe(path, **options)
            times[name].append(time.perf_counter() - start)
            print(f"  {name}: {times[name][-1]:.1f} s", flush=True)
    plain = statistics.median(times["plain"])
    print(f"{args.minutes:g} min input, median of {args.repeats}; the VAD kept "
          f"{kept_share(model, vad, path):.0%} of it")  # fmt: skip
    print("| setting | seconds | vs plain |\n| --- | --- | --- |")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"| {name} | {seconds:.1f} | {seconds / plain:.2f}x |")


if __name__ == "__main__":
    main()
