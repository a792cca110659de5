"""Greedy decoding with phrase boosting and LM fusion: this project vs NeMo, CPU.

Needs MLX and the `reference` dependency group in one environment:

    python benchmarks/biasing.py [--repeats N] [--ours-only]

The bundled demo model (a trained hybrid TDT-CTC, `parakeet --model demo`) and its 40
held-out clips joined into one input (about 90 s). NeMo's encoder output of it is decoded
by both, TDT head and CTC head, greedy (NeMo: `greedy_batch`, the PyTorch loops on the CPU),
plain, with a 1,000-phrase boosting tree (NeMo's defaults, alpha 1; phrases: the demo
corpus's names, nouns and places, word pairs of them, and the fixture's phrases), with the
3-gram LM of the demo fixture (`tests/fixtures/demo/demo_lm.arpa`, alpha 0.5) and with both.
The decoders only: the tree and LM are built before timing. Runs are interleaved after a
warm-up, the median of `--repeats` (3) taken; the token ids of ours and NeMo's must agree.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import time
from pathlib import Path

import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

import mlx.core as mx
import numpy as np
import torch
from nemo.collections.asr.models import ASRModel
from omegaconf import open_dict

import nemo_mlx_parakeet as parakeet
from mlx_ctc_decoder import greedy_decode
from nemo_mlx_parakeet.demo import MODEL
from speech_transcript.biasing import Biasing

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "reference"))
import demo_corpus  # noqa: E402
import make_fusion_fixtures as fusion_fixtures  # noqa: E402  (NeMo's decoding config with fusion)

FIXTURE = ROOT / "tests" / "fixtures" / "demo"
LM = FIXTURE / "demo_lm.arpa"
PHRASES = 1000
BOOST_ALPHA, LM_ALPHA = 1.0, 0.5
SETTINGS = {"plain": {}, "boost": {"boost": BOOST_ALPHA}, "lm": {"lm": LM_ALPHA},
            "lm_boost": {"lm": LM_ALPHA, "boost": BOOST_ALPHA}}  # fmt: skip


def phrases(count: int) -> list[str]:
    """`count` distinct phrases of the demo corpus's words (single words, then pairs)."""
    words = [*demo_corpus.NAMES, *demo_corpus.NOUNS, *demo_corpus.ADJECTIVES,
             *(p.removeprefix("the ") for p in demo_corpus.PLACES)]  # fmt: skip
    singles = list(dict.fromkeys(words))
    pairs = (f"{a} {b}" for a, b in itertools.product(singles, singles) if a != b)
    return list(itertools.islice(itertools.chain(singles, pairs), count))


def nemo_decoding(asr: ASRModel, saved, head: str, setting: dict, phrase_list: list[str]):
    """NeMo's greedy decoding of `head` with the fusion of `setting`, from the decoding
    config as restored (`saved`: `change_decoding_strategy` keeps each new config)."""
    cfg = fusion_fixtures.fusion_config(saved[head], setting, LM, phrase_list)
    with open_dict(cfg):
        cfg.strategy = "greedy_batch"
    asr.change_decoding_strategy(cfg, decoder_type=head, verbose=False)
    asr.eval()
    if head == "rnnt":
        return lambda enc, length: [
            [int(i) for i in h.y_sequence]
            for h in asr.decoding.rnnt_decoder_predictions_tensor(
                enc, length, return_hypotheses=True
            )
        ]
    blank = asr.tokenizer.vocab_size

    def ctc(enc, length):
        log_probs = asr.ctc_decoder(encoder_output=enc)
        hyps = asr.ctc_decoding.ctc_decoder_predictions_tensor(
            log_probs, length, return_hypotheses=True
        )
        frames = [list(map(int, h.y_sequence)) for h in hyps]
        return [[t for k, t in enumerate(f) if t != blank and (k == 0 or f[k - 1] != t)]
                for f in frames]  # fmt: skip

    return ctc


def ours_decoding(model, head: str, setting: dict, phrase_list: list[str]):
    biasing = Biasing(
        tuple(phrase_list) if "boost" in setting else (), boost_alpha=setting.get("boost", 1.0),
        lm=LM if "lm" in setting else None, lm_alpha=setting.get("lm"),
    )  # fmt: skip
    fusion = model.fusion_models(biasing)
    if head == "rnnt":
        return lambda enc, length: [h.ids for h in model.transducer.greedy(enc, length, fusion)]
    blank = model.ctc.config.blank_id
    return lambda enc, length: [
        h.ids for h in greedy_decode(model.ctc(enc), length, blank_id=blank, fusion=fusion)
    ]


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--ours-only", action="store_true",
                        help="time ours alone (NeMo runs once per row, for the ids): torch's "
                             "threads keep spinning after each of its calls, which the call "
                             "of ours right after pays for")  # fmt: skip
    args = parser.parse_args()
    repeats = args.repeats
    torch.set_num_threads(max(1, torch.get_num_threads()))
    asr = ASRModel.restore_from(str(MODEL), map_location="cpu").eval()
    model = parakeet.load("demo", verbose=False)
    clips = sorted((FIXTURE / "clips").glob("*.flac"))
    audio = np.concatenate([model.load_audio(c) for c in clips])
    seconds = len(audio) / model.sample_rate
    with torch.no_grad():
        signal = torch.from_numpy(audio)[None]
        enc, enc_len = asr(input_signal=signal, input_signal_length=torch.tensor([len(audio)]))
    ours_enc = mx.array(enc.transpose(1, 2).numpy())
    ours_len = mx.array(enc_len.numpy().astype(np.int32))
    phrase_list = phrases(PHRASES)
    print(f"{seconds:.1f} s of audio ({enc.shape[-1]} encoder frames), {len(phrase_list)} phrases, "
          f"LM {LM.name}; median of {repeats}")  # fmt: skip
    saved = {"rnnt": copy.deepcopy(asr.cfg.decoding),
             "ctc": copy.deepcopy(asr.cfg.aux_ctc.decoding)}  # fmt: skip
    rows = []
    for head in ("rnnt", "ctc"):
        base_ours = base_nemo = None
        for name, setting in SETTINGS.items():
            theirs = nemo_decoding(asr, saved, head, setting, phrase_list)
            ours = ours_decoding(model, head, setting, phrase_list)
            ours(ours_enc, ours_len)  # warm-up (compiles)
            with torch.no_grad():
                dt, ids_nemo = timed(theirs, enc, enc_len)
            t_ours, t_nemo = [], [dt]
            for _ in range(repeats):
                dt, ids_ours = timed(ours, ours_enc, ours_len)
                t_ours.append(dt)
                if args.ours_only:
                    continue
                with torch.no_grad():
                    dt, ids_nemo = timed(theirs, enc, enc_len)
                t_nemo.append(dt)
            t_nemo = t_nemo if args.ours_only else t_nemo[1:]
            assert ids_ours == ids_nemo, f"{head} {name}: ids differ from NeMo's"
            o, n = statistics.median(t_ours), statistics.median(t_nemo)
            base_ours = base_ours or o
            base_nemo = base_nemo or n
            rows.append((head, name, o, o / base_ours, n, n / base_nemo, o / n))
    print("| head | fusion | ours (s) | vs plain | NeMo (s) | vs plain | ours / NeMo |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for head, name, o, ro, n, rn, ratio in rows:
        print(f"| {'TDT' if head == 'rnnt' else 'CTC'} | {name} | {o:.3f} | {ro:.2f}x | {n:.3f} | "
              f"{rn:.2f}x | {ratio:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
