"""Canary: this project vs NeMo (PyTorch, CPU), the same weights and audio, one process.

Needs the `reference` dependency group (NeMo, torch) and this workspace's packages:

    python benchmarks/canary.py                  # canary-180m-flash geometry, 8 clips of 10 s
    python benchmarks/canary.py --clips 4 --seconds 5
    python benchmarks/canary.py --decoding beam --beam-size 1   # the flash models' default

A random-weight `EncDecMultiTaskModel` of nvidia/canary-180m-flash's geometry (FastConformer
17 x 512, 128 mels; Transformer decoder 4 x 1024, 8 heads; canary2 prompts; an aggregate
tokenizer of special tokens, English and German) is built with NeMo's classes and saved with
`save_to` into the git-ignored `.benchmarks-cache/`, then converted. Its EOS logit is pushed
down and its decoder's maximum length set so that every clip generates the same number of
tokens in both implementations (the ids are compared too). Speech clips are cut from the
espeak-ng speech that `benchmarks/long_audio.py` makes. Both run greedy decoding (or beam
search, `--decoding beam`), float32, batch 1 and batch 8, interleaved after a warm-up; the table gives time per audio second and
per generated token, and our time as a ratio of NeMo's.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parents[1] / ".benchmarks-cache"
GEOMETRY_180M = dict(feat_in=128, layers=17, d_model=512, heads=8, dec_hidden=1024, dec_layers=4, dec_heads=8,
                     max_length=64)  # fmt: skip
SPECIAL_TOKENS = ["<|startofcontext|>", "<|emo:undefined|>", "<|en|>", "<|de|>", "<|itn|>", "<|noitn|>",
                  "<|timestamp|>", "<|notimestamp|>", "<|diarize|>", "<|nodiarize|>", "<|transcribe|>",
                  "<|translate|>"]  # fmt: skip


def build(path: Path, *, feat_in: int, layers: int, d_model: int, heads: int, dec_hidden: int,
          dec_layers: int, dec_heads: int, max_length: int, vocab: int = 256, seed: int = 0) -> None:  # fmt: skip
    """A random-weight Canary model built and saved by NeMo itself."""
    import torch
    from nemo.collections.asr.models import EncDecMultiTaskModel
    from nemo.collections.asr.parts.submodules.multitask_decoding import MultiTaskDecodingConfig
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        langs = {}
        CanaryTokenizer.build_special_tokenizer(SPECIAL_TOKENS, Path(tmp) / "spl_tokens")
        langs["spl_tokens"] = {"dir": f"{tmp}/spl_tokens", "type": "bpe"}
        for lang in ("en", "de"):
            words = [
                "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 8)))
                for _ in range(800)
            ]
            lines = [
                " ".join(rng.choice(words) for _ in range(10)).capitalize() + rng.choice(".?!,")
                for _ in range(4000)
            ]
            text = Path(tmp) / f"{lang}.txt"
            text.write_text("\n".join(lines))
            create_spt_model(str(text), vocab_size=vocab, sample_size=-1, do_lower_case=False,
                             output_dir=f"{tmp}/{lang}", tokenizer_type="bpe")  # fmt: skip
            langs[lang] = {"dir": f"{tmp}/{lang}", "type": "bpe"}
        cfg = {
            "sample_rate": 16000,
            "prompt_format": "canary2",
            "tokenizer": {
                "dir": None,
                "type": "agg",
                "langs": langs,
                "custom_tokenizer": {
                    "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer"
                },
            },
            "model_defaults": {
                "asr_enc_hidden": d_model,
                "lm_enc_hidden": dec_hidden,
                "lm_dec_hidden": dec_hidden,
            },
            "preprocessor": {
                "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                "features": feat_in,
                "window_size": 0.025,
                "window_stride": 0.01,
                "n_fft": 512,
                "normalize": "per_feature",
                "dither": 0.0,
                "pad_to": 0,
            },
            "encoder": {
                "_target_": "nemo.collections.asr.modules.ConformerEncoder",
                "feat_in": feat_in,
                "n_layers": layers,
                "d_model": d_model,
                "n_heads": heads,
                "subsampling": "dw_striding",
                "subsampling_factor": 8,
                "subsampling_conv_channels": 256,
                "conv_kernel_size": 9,
                "ff_expansion_factor": 4,
                "self_attention_model": "rel_pos",
                "xscaling": True,
                "untie_biases": True,
            },
            "transf_encoder": {
                "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
                "num_layers": 0,
                "hidden_size": dec_hidden,
                "inner_size": 4 * dec_hidden,
                "num_attention_heads": dec_heads,
            },
            "transf_decoder": {
                "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
                "model_name": None,
                "pretrained": False,
                "encoder": None,
                "pre_ln_final_layer_norm": True,
                "config_dict": {
                    "max_sequence_length": max_length,
                    "num_token_types": 0,
                    "embedding_dropout": 0.0,
                    "learn_positional_encodings": False,
                    "hidden_size": dec_hidden,
                    "inner_size": 4 * dec_hidden,
                    "num_layers": dec_layers,
                    "num_attention_heads": dec_heads,
                    "ffn_dropout": 0.0,
                    "attn_score_dropout": 0.0,
                    "attn_layer_dropout": 0.0,
                    "hidden_act": "relu",
                    "pre_ln": True,
                    "vocab_size": None,
                },
            },
            "head": {
                "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
                "num_layers": 1,
                "activation": "relu",
                "log_softmax": True,
                "hidden_size": dec_hidden,
                "num_classes": None,
                "dropout": 0.0,
                "use_transformer_init": True,
            },
            "loss": {
                "_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
                "label_smoothing": 0.0,
                "pad_id": None,
            },
            "optim": None,
        }
        decoding = OmegaConf.structured(MultiTaskDecodingConfig)
        decoding.strategy = "greedy"
        cfg = OmegaConf.create(cfg)
        cfg.decoding = decoding
        model = EncDecMultiTaskModel(cfg=cfg).eval()
        with torch.no_grad():  # never stop early: every clip generates up to the length limit
            model.log_softmax.mlp.layer0.bias[model.tokenizer.eos_id] -= 1e4
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(path))


def clips(count: int, seconds: float) -> list[Path]:
    source = CACHE / "speech-1min.wav"
    if not source.exists():
        sys.exit(f"{source} is missing: run benchmarks/long_audio.py --minutes 1 once")
    with wave.open(str(source)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    out = []
    for k in range(count):
        path = CACHE / f"clip-{seconds:g}s-{k}.wav"
        start = int(k * 0.73 * seconds * 16000) % max(1, len(audio) - int(seconds * 16000))
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(audio[start : start + int(seconds * 16000)].tobytes())
        out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoding", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--beam-size", type=int, default=1)
    args = parser.parse_args()
    model_path = CACHE / "canary-180m-geometry.nemo"
    if not model_path.exists():
        print(f"building {model_path} with NeMo (once) ...", file=sys.stderr)
        build(model_path, **GEOMETRY_180M)

    import torch
    from nemo.collections.asr.models import EncDecMultiTaskModel

    import nemo_mlx_canary as canary

    torch.set_num_threads(2)
    paths = clips(args.clips, args.seconds)
    nemo = EncDecMultiTaskModel.restore_from(str(model_path), map_location="cpu").eval()
    if args.decoding == "beam":
        from omegaconf import open_dict

        decoding = nemo.cfg.decoding.copy()
        with open_dict(decoding):
            decoding.strategy = "beam"
            decoding.beam.beam_size = args.beam_size
        nemo.change_decoding_strategy(decoding)
    ours = canary.load(model_path, cache_dir=CACHE / "models", verbose=False)
    names = [str(p) for p in paths]

    def run_nemo(batch: int):
        hyps = nemo.transcribe(names, batch_size=batch, source_lang="en", target_lang="en", pnc="yes",
                               verbose=False)  # fmt: skip
        return [list(h.y_sequence.tolist()) for h in hyps]

    def run_ours(batch: int):
        results = ours.transcribe(names, source_lang="en", batch_size=batch, decoding=args.decoding,
                                  beam_size=args.beam_size)  # fmt: skip
        return [[t.id for t in r.tokens] for r in results]

    audio_seconds = args.clips * args.seconds
    search = "greedy" if args.decoding == "greedy" else f"beam search, {args.beam_size} beam(s)"
    print(
        f"{args.clips} clips of {args.seconds:g} s, canary-180m-flash geometry, float32, {search}"
    )
    for batch in (1, 8):
        times = {"nemo": [], "ours": []}
        ids = {}
        for name, fn in (("nemo", run_nemo), ("ours", run_ours)):
            ids[name] = fn(batch)  # warm-up
        for _ in range(args.repeats):
            for name, fn in (("nemo", run_nemo), ("ours", run_ours)):
                start = time.perf_counter()
                fn(batch)
                times[name].append(time.perf_counter() - start)
        tokens = sum(len(x) for x in ids["ours"])
        same = ids["nemo"] == ids["ours"]
        t_nemo, t_ours = (float(np.median(times[k])) for k in ("nemo", "ours"))
        print(f"batch {batch}: NeMo {t_nemo:.2f} s ({t_nemo / audio_seconds * 1000:.0f} ms/audio s, "
              f"{t_nemo / tokens * 1000:.1f} ms/token); ours {t_ours:.2f} s ({t_ours / audio_seconds * 1000:.0f} "
              f"ms/audio s, {t_ours / tokens * 1000:.1f} ms/token) = {t_ours / t_nemo:.2f}x NeMo; "
              f"{tokens} tokens, ids {'identical' if same else 'DIFFER'}")  # fmt: skip


if __name__ == "__main__":
    main()
