"""Canary: this project vs NeMo (PyTorch, CPU), the same weights, samples and stages, one process.

Needs the `reference` dependency group (NeMo, torch) and this workspace's packages:

    python benchmarks/canary.py                  # canary-180m-flash's config, 8 clips of 10 s
    python benchmarks/canary.py --clips 4 --seconds 5
    python benchmarks/canary.py --decoding beam --beam-size 1   # the flash models' default

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
The table gives time per audio second and per generated token (the whole time, encoder
included, over the tokens), our time as a ratio of NeMo's, and whether the ids are identical.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import CACHE, SAMPLE_RATE, read_wav, speech

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"  # make_canary_*fixture*.py's helpers
NAME = "canary-180m-flash"
MODEL = CACHE / f"{NAME}-config.nemo"
MAX_LENGTH = 64  # decoder positions (published: 1024): the 9-token prompt + 55 generated
LANG_PIECES = 1024  # each of de, en, es, fr (published)
PROMPT = "en_asr_pnc"  # make_canary_fixture.PROMPTS: source en, target en, pnc yes


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoding", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--beam-size", type=int, default=1)
    args = parser.parse_args()
    if args.seconds < 1.0:  # NeMo's loader pads shorter clips to 1 s; not reproduced here
        parser.error("--seconds must be at least 1")
    sys.path.insert(0, str(REFERENCE))
    if not MODEL.exists():
        print(f"building {MODEL} with NeMo (once) ...", file=sys.stderr)
        build(MODEL)

    import make_canary_fixture as fixture
    import torch
    from nemo.collections.asr.models import EncDecMultiTaskModel

    import nemo_mlx_canary as canary

    torch.set_num_threads(2)
    audio = clips(args.clips, args.seconds)
    nemo = EncDecMultiTaskModel.restore_from(str(MODEL), map_location="cpu").eval()
    if args.decoding == "beam":
        fixture.set_decoding(nemo, "beam", beam_size=args.beam_size)
    else:
        fixture.set_decoding(nemo, "greedy")
    prompt = fixture.prompt_ids(nemo, fixture.prompt_slots(nemo, PROMPT))
    ours = canary.load(MODEL, cache_dir=CACHE / "models", verbose=False)

    def run_nemo(batch: int) -> list[list[int]]:
        ids = []
        with torch.inference_mode():
            for first in range(0, len(audio), batch):
                group = audio[first : first + batch]
                signal, length = fixture.base.padded(group)
                _, _, states, mask = nemo(input_signal=signal, input_signal_length=length)
                hyps = nemo.decoding.decode_predictions_tensor(
                    encoder_hidden_states=states,
                    encoder_input_mask=mask,
                    decoder_input_ids=prompt[None].repeat(len(group), 1),
                    return_hypotheses=False,
                )
                ids += [[int(t) for t in h.y_sequence] for h in hyps]
        return ids

    def run_ours(batch: int) -> list[list[int]]:
        results = ours.transcribe(audio, source_lang="en", batch_size=batch,
                                  decoding=args.decoding, beam_size=args.beam_size)  # fmt: skip
        return [[t.id for t in r.tokens] for r in results]

    # Untimed: NeMo's own `transcribe` on the same samples builds this prompt and these ids.
    batches = (1, 8)
    reference, used = fixture.transcribe(nemo, audio, PROMPT, batch_size=max(batches))
    assert all(p == prompt.tolist() for p in used), (used, prompt)
    transcribed = [r["ids"] for r in reference]

    audio_seconds = args.clips * args.seconds
    search = "greedy" if args.decoding == "greedy" else f"beam search, {args.beam_size} beam(s)"
    print(f"{args.clips} clips of {args.seconds:g} s, canary-180m-flash's published config "
          f"(random weights, {MAX_LENGTH} decoder positions), float32, {search}; {torch.get_num_threads()} "
          "torch threads")  # fmt: skip
    print("timed: decoded samples in memory -> ids and text. NeMo: padding, forward (preprocessor, "
          "encoder, projection), decode_predictions_tensor with transcribe's prompt (no data loader); "
          "ours: transcribe(arrays)")  # fmt: skip
    for batch in batches:
        times = {"nemo": [], "ours": []}
        ids = {}
        for name, fn in (("nemo", run_nemo), ("ours", run_ours)):
            ids[name] = fn(batch)  # warm-up
        for r in range(args.repeats):  # interleaved, who goes first alternating
            order = (("nemo", run_nemo), ("ours", run_ours))
            for name, fn in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                fn(batch)
                times[name].append(time.perf_counter() - start)
        tokens = sum(len(x) for x in ids["ours"])
        same = ids["nemo"] == ids["ours"]
        via = (
            ""
            if ids["nemo"] == transcribed
            else " (NeMo's direct path DIFFERS from its transcribe)"
        )
        t_nemo, t_ours = (float(np.median(times[k])) for k in ("nemo", "ours"))
        print(f"batch {batch}: NeMo {t_nemo:.2f} s ({t_nemo / audio_seconds * 1000:.0f} ms/audio s, "
              f"{t_nemo / tokens * 1000:.1f} ms/token); ours {t_ours:.2f} s ({t_ours / audio_seconds * 1000:.0f} "
              f"ms/audio s, {t_ours / tokens * 1000:.1f} ms/token) = {t_ours / t_nemo:.2f}x NeMo; "
              f"{tokens} tokens, ids {'identical' if same else 'DIFFER'}{via}")  # fmt: skip
        print(
            f"  runs, s: NeMo {' '.join(f'{t:.2f}' for t in times['nemo'])}; "
            f"ours {' '.join(f'{t:.2f}' for t in times['ours'])}",
            flush=True,
        )


if __name__ == "__main__":
    main()
