"""Where frame VAD's and offline Sortformer's CPU time goes, stage by stage, ours and NeMo's.

    python benchmarks/vad_diar_profile.py                     # both, VAD 600 s, Sortformer 120 s
    python benchmarks/vad_diar_profile.py --only vad --seconds 60

The random-weight models of `benchmarks/vad.py` and `benchmarks/diarization.py` (NeMo's own
classes, published configs, full size) and the same audio. NeMo's stages are timed with
forward hooks on its modules during one plain forward (torch on the CPU is synchronous);
ours by evaluating each stage on its own (`mx.eval` at its end), which is how a profile has
to cut MLX's lazy graph. Medians of `--repeats`, the systems interleaved; the stage times of
one system add up to about its whole forward, which is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import mlx_cpu_runtime.auto  # noqa: F401  (before mlx)

import diarization
import mlx.core as mx
import numpy as np
import torch
import vad
from _common import read_wav, speech

Stages = dict[str, float]


def hooked(modules: dict[str, torch.nn.Module], run: Callable[[], object]) -> Stages:
    """NeMo: seconds spent in each named module during one `run()`, and the whole run."""
    spent: Stages = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []
    for name, module in modules.items():

        def pre(_m, _a, name=name):
            starts[name] = time.perf_counter()

        def post(_m, _a, _o, name=name):
            spent[name] += time.perf_counter() - starts[name]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    start = time.perf_counter()
    with torch.inference_mode():
        run()
    spent["(whole forward)"] = time.perf_counter() - start
    for handle in handles:
        handle.remove()
    return dict(spent)


class Staged:
    """Ours: each stage evaluated on its own; `stage(name, fn, *args)` returns fn's output."""

    def __init__(self) -> None:
        self.spent: Stages = defaultdict(float)

    def __call__(self, name: str, fn: Callable, *args):
        start = time.perf_counter()
        out = fn(*args)
        mx.eval(out)
        self.spent[name] += time.perf_counter() - start
        return out


def vad_stages(samples: np.ndarray) -> tuple[Callable[[], Stages], Callable[[], Stages]]:
    model = vad.nemo_model()
    ours = vad.ours(model)
    signal, length = torch.from_numpy(samples)[None], torch.tensor([len(samples)])
    blocks = {f"encoder block {i}": b for i, b in enumerate(model.encoder.encoder)}
    modules = {"features": model.preprocessor, **blocks, "head": model.decoder}

    def nemo() -> Stages:
        return hooked(modules, lambda: model(input_signal=signal, input_signal_length=length))

    def mine() -> Stages:
        stage, start = Staged(), time.perf_counter()
        x, lengths = stage("features", ours.frontend, mx.array(samples))
        x = x.swapaxes(1, 2)  # the blocks run channels-first
        for i, block in enumerate(ours.encoder.encoder):
            x, lengths = stage(f"encoder block {i}", block, x, lengths)
        stage("head", lambda h: mx.softmax(ours.decoder(h.swapaxes(1, 2)), axis=-1)[0, :, 1], x)
        stage.spent["(whole forward)"] = time.perf_counter() - start
        return dict(stage.spent)

    return nemo, mine


def sortformer_stages(samples: np.ndarray) -> tuple[Callable[[], Stages], Callable[[], Stages]]:
    model = diarization.nemo_model("diar_sortformer_4spk-v1")
    ours = diarization.ours(model)
    signal, length = torch.from_numpy(samples)[None], torch.tensor([len(samples)])
    encoder = model.encoder
    modules = {"features": model.preprocessor, "pre_encode": encoder.pre_encode}
    for part in ("feed_forward1", "self_attn", "conv", "feed_forward2"):
        for i, layer in enumerate(encoder.layers):
            modules[f"conformer {part} #{i}"] = getattr(layer, part)
    modules["transformer"] = model.transformer_encoder

    def nemo() -> Stages:
        spent = hooked(modules, lambda: model.forward(signal, length))
        return _summed(spent)

    def mine() -> Stages:
        stage, start = Staged(), time.perf_counter()
        features = stage("features", ours.features, samples)
        sortformer = ours.model
        lengths = mx.array([features.shape[1]], dtype=mx.int32)
        conformer = sortformer.encoder
        x, lengths = stage("pre_encode", conformer.pre_encode, features, lengths)
        x = x * conformer._xscale
        pos, att_lengths, _, pad_mask = conformer._attention_inputs(x, lengths, None)
        for i, layer in enumerate(conformer.layers):
            x = _conformer_layer(stage, f" #{i}", layer, x, pos, att_lengths, pad_mask)
        x = stage("projection", sortformer.sortformer_modules.project, x)
        hidden = stage("transformer", sortformer.transformer_encoder, x, lengths)
        stage("head", sortformer.sortformer_modules, hidden)
        stage.spent["(whole forward)"] = time.perf_counter() - start
        return _summed(dict(stage.spent))

    return nemo, mine


def _conformer_layer(stage: Staged, tag: str, layer, x, pos, lengths, pad_mask) -> mx.array:
    """One of our ConformerLayers, its four parts staged as NeMo's modules are hooked."""
    x = stage(
        "conformer feed_forward1" + tag,
        lambda x: x + 0.5 * layer.feed_forward1(layer.norm_feed_forward1(x)),
        x,
    )
    x = stage(
        "conformer self_attn" + tag,
        lambda x: x + layer.self_attn(layer.norm_self_att(x), pos, lengths),
        x,
    )
    x = stage("conformer conv" + tag, lambda x: x + layer.conv(layer.norm_conv(x), pad_mask), x)
    return stage(
        "conformer feed_forward2" + tag,
        lambda x: layer.norm_out(x + 0.5 * layer.feed_forward2(layer.norm_feed_forward2(x))),
        x,
    )


def _summed(spent: Stages) -> Stages:
    """Per-layer stages ("... #i") added up over the layers."""
    out: Stages = defaultdict(float)
    for name, seconds in spent.items():
        out[name.split(" #")[0]] += seconds
    return dict(out)


def report(
    title: str, nemo: Callable[[], Stages], mine: Callable[[], Stages], repeats: int
) -> None:
    runs: dict[str, list[Stages]] = {"nemo": [], "ours": []}
    nemo(), mine()  # warm-up
    for _ in range(repeats):
        runs["nemo"].append(nemo())
        runs["ours"].append(mine())
    medians = {
        system: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for system, results in runs.items()
    }
    names = list(dict.fromkeys([*medians["ours"], *medians["nemo"]]))
    print(f"\n{title} (median of {repeats}; seconds)")
    print(f"{'stage':<28} {'NeMo':>8} {'ours':>8} {'ours/NeMo':>10}")
    for name in names:
        n, o = medians["nemo"].get(name), medians["ours"].get(name)
        ratio = f"{o / n:10.2f}" if n and o else " " * 10
        print(f"{name:<28} {n or 0:8.3f} {o or 0:8.3f} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["vad", "sortformer"])
    parser.add_argument("--seconds", type=float, help="default: VAD 600, Sortformer 120")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name, stages, default in (("vad", vad_stages, 600.0), ("sortformer", sortformer_stages, 120.0)):  # fmt: skip
        if args.only not in (None, name):
            continue
        seconds = args.seconds or default
        samples = read_wav(speech(max(1.0, seconds / 60))).astype(np.float32) / 32768
        samples = samples[: int(seconds * 16000)]
        report(f"{name}, {seconds:g} s", *stages(samples), args.repeats)


if __name__ == "__main__":
    main()
