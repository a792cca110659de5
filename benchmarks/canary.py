"""Canary: this project vs NeMo (PyTorch), the same weights, samples and stages, each in its own process.

Needs the `reference` dependency group (NeMo, torch) and this workspace's packages:

    python benchmarks/canary.py                  # canary-180m-flash's config, 8 clips of 10 s
    python benchmarks/canary.py --clips 4 --seconds 5
    python benchmarks/canary.py --decoding beam --beam-size 1   # the flash models' default
    python benchmarks/canary.py --device gpu --dtype bfloat16   # MLX CUDA vs NeMo on CUDA

The model: an `EncDecMultiTaskModel` built with NeMo's classes from nvidia/canary-180m-flash's
published config, tests/reference/configs/canary-180m-flash.yaml, with random weights: every
model section as published (FastConformer 17 x 512, 128 mels, no xscaling; Linear projection to
1024; Transformer decoder 4 x 1024, 8 heads; canary2 prompts and defaults; beam of width 1,
`max_generation_delta` 50), read with tests/reference/make_canary_checkpoint_fixtures.py's
`published_config`; tokenizers of the published sizes: its `special_tokens` (NVIDIA's canary-2
list, 900 frame tokens: 1152 pieces, `<|en|>` 62 as in the real one) and a 1024-piece BPE model
per language (de, en, es, fr) trained here on made-up words, 5248 classes. Two changes, so that
every clip generates the same number of tokens in both implementations: the EOS logit is pushed
down, and the decoder has 64 positions (published: 1024), so each clip generates 55 tokens (64
less the 9-token prompt). It is saved with `save_to` into the git-ignored `.benchmarks-cache/`
once, then converted. Speech clips are cut from espeak-ng speech (`_common.speech`), decoded
once into float32 samples in memory, outside the timing.

Timed, for both: the decoded samples of all clips to token ids and text, batch by batch in
input order (batch 1, then batches of 8), greedy decoding (or beam search, `--decoding beam`),
float32, each batch size warmed up, then interleaved repeats (median).
- NeMo: what `transcribe` runs after its data loader, called directly: the batch zero-padded
  as its collate does, `forward` (preprocessor, encoder, `encoder_decoder_proj`, mask), then
  `decoding.decode_predictions_tensor` with the canary2 prompt `transcribe` builds
  (source en, target en, pnc yes, no timestamps), which detokenises too. Not timed: its
  manifest, data loader and audio reading. Before timing, one untimed `transcribe` on the same
  samples checks that this prompt is the one it builds and that its ids equal the direct path's.
- Ours: `Canary.transcribe` on the arrays (prompt, log-mel, encoder, decoding, text and
  `Transcript` assembly).
Each system runs in its own worker process (on a GPU, torch cannot load its cuDNN once MLX
has loaded the system's), warmed up on every batch size; the parent interleaves their
repeats. On a GPU NeMo's encoder, projection and decoder run in bfloat16 when asked (its
preprocessor stays float32, as in `e2e.py`); ours loads the model in that dtype.
The table gives time per audio second and per generated token (the whole time, encoder
included, over the tokens), our time as a ratio of NeMo's, and whether the ids are identical.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    CACHE,
    SAMPLE_RATE,
    agreement,
    failure,
    read_wav,
    receive,
    result_channel,
    send,
    speech,
    start_worker,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"  # make_canary_*fixture*.py's helpers
NAME = "canary-180m-flash"
MODEL = CACHE / f"{NAME}-config.nemo"
MAX_LENGTH = 64  # decoder positions (published: 1024): the 9-token prompt + 55 generated
LANG_PIECES = 1024  # each of de, en, es, fr (published)
PROMPT = "en_asr_pnc"  # make_canary_fixture.PROMPTS: source en, target en, pnc yes
BATCHES = (1, 8)


def build(path: Path, seed: int = 0) -> None:
    """The random-weight model, built and saved by NeMo itself.

    The config and the special tokens come from tests/reference/make_canary_checkpoint_fixtures.py
    (`published_config`, `special_tokens`), unshrunk: 900 frame tokens, 1152 pieces, ids as in
    the real spl_tokens; the per-language BPE models are trained here at the published 1024.
    """
    import make_canary_checkpoint_fixtures as ckpt
    import torch
    from nemo.collections.asr.models import EncDecMultiTaskModel
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
    from omegaconf import OmegaConf

    config, _sources = ckpt.published_config(NAME, ckpt.CHECKPOINTS[NAME])
    config["transf_decoder"]["config_dict"]["max_sequence_length"] = MAX_LENGTH
    config["optim"] = None
    torch.manual_seed(seed)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        CanaryTokenizer.build_special_tokenizer(ckpt.special_tokens(900), Path(tmp) / "spl_tokens")
        langs = {}
        for lang in config["tokenizer"]["langs"]:  # the published order, spl_tokens first
            langs[lang] = {"dir": f"{tmp}/{lang}", "type": "bpe"}
            if lang == "spl_tokens":
                continue
            words = [
                "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
                for _ in range(5000)
            ]
            lines = [
                " ".join(rng.choice(words) for _ in range(12)).capitalize() + rng.choice(".?!,")
                for _ in range(20000)
            ]
            text = Path(tmp) / f"{lang}.txt"
            text.write_text("\n".join(lines))
            create_spt_model(str(text), vocab_size=LANG_PIECES, sample_size=-1, do_lower_case=False,
                             output_dir=f"{tmp}/{lang}", tokenizer_type="bpe")  # fmt: skip
        config["tokenizer"]["langs"] = langs
        model = EncDecMultiTaskModel(cfg=OmegaConf.create(config)).eval()
        assert model.tokenizer.vocab_size == config["head"]["num_classes"] == 5248
        assert model.tokenizer.token_to_id("<|en|>", "spl_tokens") == 62
        with torch.no_grad():  # never stop early: every clip generates up to the length limit
            model.log_softmax.mlp.layer0.bias[model.tokenizer.eos_id] -= 1e4
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(path))


def clips(count: int, seconds: float) -> list[np.ndarray]:
    """`count` clips of `seconds` cut from 1 min of speech, decoded to float32 samples."""
    audio = read_wav(speech(1)).astype(np.float32) / 32768.0
    size = int(seconds * SAMPLE_RATE)
    starts = [int(k * 0.73 * size) % max(1, len(audio) - size) for k in range(count)]
    return [audio[s : s + size].copy() for s in starts]


class NeMo:
    """NeMo's forward and `decode_predictions_tensor`, as `transcribe` runs them."""

    def __init__(self, args: argparse.Namespace, audio: list[np.ndarray]) -> None:
        import make_canary_fixture as fixture
        import torch
        from nemo.collections.asr.models import EncDecMultiTaskModel

        self.torch, self.fixture, self.audio = torch, fixture, audio
        self.gpu = args.device == "gpu"
        self.device = torch.device("cuda" if self.gpu else "cpu")
        if not self.gpu:
            torch.set_num_threads(2)
        model = EncDecMultiTaskModel.restore_from(str(MODEL), map_location=self.device).eval()
        if args.decoding == "beam":
            fixture.set_decoding(model, "beam", beam_size=args.beam_size)
        else:
            fixture.set_decoding(model, "greedy")
        self.prompt = fixture.prompt_ids(model, fixture.prompt_slots(model, PROMPT)).to(self.device)
        # Untimed, in float32: NeMo's own `transcribe` builds this prompt and these ids.
        reference, used = fixture.transcribe(model, audio, PROMPT, batch_size=max(BATCHES))
        assert all(p == self.prompt.tolist() for p in used), (used, self.prompt)
        self.transcribed = [r["ids"] for r in reference]
        self.dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
        if self.dtype != torch.float32:  # the preprocessor stays float32
            for part in (model.encoder, model.encoder_decoder_proj, model.transf_decoder,
                         model.log_softmax):  # fmt: skip
                part.to(self.dtype)
        self.model = model

    def run(self, batch: int) -> list[list[int]]:
        torch, model, ids = self.torch, self.model, []
        with torch.inference_mode():
            for first in range(0, len(self.audio), batch):
                group = self.audio[first : first + batch]
                signal, length = self.fixture.base.padded(group)
                signal, length = signal.to(self.device), length.to(self.device)
                features, feature_len = model.preprocessor(input_signal=signal, length=length)
                _, _, states, mask = model(  # its forward after the preprocessor
                    processed_signal=features.to(self.dtype), processed_signal_length=feature_len
                )
                hyps = model.decoding.decode_predictions_tensor(
                    encoder_hidden_states=states,
                    encoder_input_mask=mask,
                    decoder_input_ids=self.prompt[None].repeat(len(group), 1),
                    return_hypotheses=False,
                )
                ids += [[int(t) for t in h.y_sequence] for h in hyps]
        return ids

    def sync(self) -> None:
        if self.gpu:
            self.torch.cuda.synchronize()


class Ours:
    """`Canary.transcribe` on the arrays."""

    def __init__(self, args: argparse.Namespace, audio: list[np.ndarray]) -> None:
        import mlx_cpu_runtime.auto  # noqa: F401  (before mlx)

        import mlx.core as mx

        import nemo_mlx_canary as canary

        mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
        self.args, self.audio = args, audio
        self.model = canary.load(MODEL, cache_dir=CACHE / "models", verbose=False,
                                 dtype=args.dtype)  # fmt: skip

    def run(self, batch: int) -> list[list[int]]:
        results = self.model.transcribe(self.audio, source_lang="en", batch_size=batch,
                                        decoding=self.args.decoding,
                                        beam_size=self.args.beam_size)  # fmt: skip
        return [[t.id for t in r.tokens] for r in results]

    def sync(self) -> None:
        pass


def serve(args: argparse.Namespace) -> None:
    """Worker: load, check, warm up each batch size, then one timed run per 'run BATCH' line."""
    channel = result_channel()
    sys.path.insert(0, str(REFERENCE))
    audio = clips(args.clips, args.seconds)
    worker = (NeMo if args.worker == "nemo" else Ours)(args, audio)
    ids = {}
    for batch in BATCHES:
        ids[batch] = worker.run(batch)
        worker.sync()
    send(channel, {"ids": ids, "transcribed": getattr(worker, "transcribed", None)})
    for line in sys.stdin:
        command, _, batch = line.strip().partition(" ")
        if command != "run":
            break
        start = time.perf_counter()
        worker.run(int(batch))
        worker.sync()
        send(channel, {"wall": time.perf_counter() - start})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoding", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--worker", choices=["nemo", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seconds < 1.0:  # NeMo's loader pads shorter clips to 1 s; not reproduced here
        parser.error("--seconds must be at least 1")
    if args.worker:
        serve(args)
        return
    sys.path.insert(0, str(REFERENCE))
    if not MODEL.exists():
        print(f"building {MODEL} with NeMo (once) ...", file=sys.stderr)
        build(MODEL)
    shared = [f"--clips={args.clips}", f"--seconds={args.seconds}", f"--decoding={args.decoding}",
              f"--beam-size={args.beam_size}", f"--device={args.device}", f"--dtype={args.dtype}"]  # fmt: skip
    workers = {
        name: start_worker(__file__, *shared, f"--worker={name}") for name in ("nemo", "ours")
    }
    ready = {}
    for name, proc in workers.items():  # both load at once; each warms up alone in its process
        ready[name] = receive(proc)
        if ready[name] is None:
            raise SystemExit(f"{name} worker {failure(proc)}")

    audio_seconds = args.clips * args.seconds
    search = "greedy" if args.decoding == "greedy" else f"beam search, {args.beam_size} beam(s)"
    print(f"{args.clips} clips of {args.seconds:g} s, canary-180m-flash's published config "
          f"(random weights, {MAX_LENGTH} decoder positions), {args.device}, {args.dtype}, "
          f"{search}; each system in its own process")  # fmt: skip
    print("timed: decoded samples in memory -> ids and text. NeMo: padding, forward (preprocessor, "
          "encoder, projection), decode_predictions_tensor with transcribe's prompt (no data loader); "
          "ours: transcribe(arrays)")  # fmt: skip
    for batch in BATCHES:
        times: dict[str, list[float]] = {"nemo": [], "ours": []}
        for r in range(args.repeats):  # interleaved, who goes first alternating
            order = ["nemo", "ours"] if r % 2 == 0 else ["ours", "nemo"]
            for name in order:
                workers[name].stdin.write(f"run {batch}\n")
                workers[name].stdin.flush()
                answer = receive(workers[name])
                if answer is None:
                    raise SystemExit(f"{name} worker {failure(workers[name])}")
                times[name].append(answer["wall"])
        ids = {name: ready[name]["ids"][str(batch)] for name in workers}
        tokens = sum(len(x) for x in ids["ours"])
        via = "" if ids["nemo"] == ready["nemo"]["transcribed"] or args.dtype != "float32" else (
            " (NeMo's direct path DIFFERS from its transcribe)")  # fmt: skip
        t_nemo, t_ours = (statistics.median(times[k]) for k in ("nemo", "ours"))
        print(f"batch {batch}: NeMo {t_nemo:.3f} s ({t_nemo / audio_seconds * 1000:.1f} ms/audio s, "
              f"{t_nemo / tokens * 1000:.2f} ms/token); ours {t_ours:.3f} s ({t_ours / audio_seconds * 1000:.1f} "
              f"ms/audio s, {t_ours / tokens * 1000:.2f} ms/token) = {t_ours / t_nemo:.2f}x NeMo; "
              f"{tokens} tokens, token ids vs NeMo: {agreement(ids['ours'], ids['nemo'])}{via}")  # fmt: skip
        print(
            f"  runs, s: NeMo {' '.join(f'{t:.3f}' for t in times['nemo'])}; "
            f"ours {' '.join(f'{t:.3f}' for t in times['ours'])}",
            flush=True,
        )
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()


if __name__ == "__main__":
    main()
