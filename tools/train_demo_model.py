"""Train the demo model: a small FastConformer TDT (+ CTC head) on espeak-ng speech, on the
CPU, with NeMo's own classes and training loop.

Needs the `reference` group (NeMo 3.0.0, torch), espeak-ng and about 1.5 GB of disk (in the
git-ignored .benchmarks-cache/demo-model/). From the repository root:

    /work/ref-venv/bin/python tools/train_demo_model.py            # the committed model
    /work/ref-venv/bin/python tools/train_demo_model.py --quick    # a few-minute trial
    /work/ref-venv/bin/python tests/reference/make_demo_fixture.py # then NeMo's transcripts

Steps, all seeded:
1. Synthesise the data with espeak-ng (`tools/demo_corpus.py`: spoken digits, numbers,
   times and about 460 common words in short sentences, lower case; 6 accents x 18 voice
   variants, speeds 125-205 wpm, pitches, word gaps, gain, white noise at 18-40 dB SNR on
   80% of clips), in a process pool, with NeMo manifests. Validation adds two variants never
   trained on; the held-out test set uses four other variants, two accents never trained
   on, and sentences never trained on (split by a hash of the sentence).
2. Train a 128-piece SentencePiece BPE tokenizer on the training transcripts (NeMo's helper).
3. Train `EncDecHybridRNNTCTCBPEModel` (parakeet-tdt_ctc-110m's layout at demo size: TDT
   head with durations 0-4, and a CTC head at weight 0.3, which costs one linear layer and
   speeds up the transducer's alignment) with NeMo's training loop (Lightning `Trainer`,
   CPU), keeping the weights of the best validation WER (TDT head), with early stopping on
   it, over a cosine schedule of `--epochs` (or until the time budget).
4. `save_to` the `.nemo`, restore it, and print NeMo's WER on the held-out test set.
5. Write the package's model and example clip, and the committed held-out subset (FLAC).

NeMo's TDT loss runs only on CUDA (numba), and its pure-PyTorch reference moves tensors to
CUDA. `TDTLossCPU` below is the same loss: a numba forward-backward pass over the TDT
lattice gives log P and each arc's posterior (the gradient with respect to the arc's
log-probability), and autograd carries it through the log-softmaxes. `--check-loss`
compares it with NeMo's `TDTLossPytorch` and the gradient with finite differences. The
model's configuration is NVIDIA's, `loss_name: tdt` included: only the kernel is replaced.

One torch thread by default: on a 2-core machine shared with other work, two OpenMP threads
waiting on each other at every operation made steps 4-10x slower than one thread.

`--rare w1,w2,... --rare-max N --work DIR`: a variant whose training split holds each of
those words in at most N sentences (`demo_corpus.Rarity`; `benchmarks/rare_words.py`), in
its own git-ignored folder; it never writes the committed outputs.

While data generation and training run, /tmp/cpu-busy.lock exists (others skip timing runs).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_corpus as corpus

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".benchmarks-cache" / "demo-model"
PACKAGE_DATA = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo"
HELDOUT = ROOT / "tests" / "fixtures" / "demo"
LOCK = Path("/tmp/cpu-busy.lock")
SEED = 1234
SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
VOCAB_SIZE = 128
DURATIONS = [0, 1, 2, 3, 4]
COMMITTED_HELDOUT = 40  # clips of the held-out test set committed for the CI test
EXAMPLE = corpus.Utterance(
    name="example", text="please call anna at quarter past seven in the morning",
    voice="en-us-nyc+f5", speed=150, pitch=55, gap=0, snr_db=None, gain_db=-3.0,
    lead=0.25, tail=0.3, seed=7,
)  # fmt: skip


@contextmanager
def cpu_busy() -> Iterator[None]:
    """/tmp/cpu-busy.lock while the heavy work runs, removed however it ends (SIGTERM too)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    LOCK.write_text(f"train_demo_model.py pid {os.getpid()}\n")
    try:
        yield
    finally:
        LOCK.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- audio


def synthesise(utt: corpus.Utterance) -> np.ndarray:
    """16 kHz float32 samples of one utterance: espeak-ng, resampled, gain, padding, noise."""
    from scipy.signal import resample_poly

    cmd = ["espeak-ng", "-v", utt.voice, "-s", str(utt.speed), "-p", str(utt.pitch),
           "-g", str(utt.gap), "--stdout", utt.text]  # fmt: skip
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        assert w.getframerate() == ESPEAK_RATE
        assert w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    speech = resample_poly(pcm.astype(np.float64) / 32768.0, 320, 441)
    peak = float(np.max(np.abs(speech))) or 1.0
    speech = speech / peak * 0.9 * 10 ** (utt.gain_db / 20)
    audio = np.concatenate(
        [np.zeros(int(utt.lead * SAMPLE_RATE)), speech, np.zeros(int(utt.tail * SAMPLE_RATE))]
    )
    if utt.snr_db is not None:
        rng = np.random.default_rng(utt.seed)
        rms = float(np.sqrt(np.mean(speech**2)))
        audio = audio + rng.normal(0.0, rms / 10 ** (utt.snr_db / 20), audio.shape)
    return np.clip(audio, -1.0, 32767 / 32768).astype(np.float32)


def write_clip(job: tuple[corpus.Utterance, str]) -> float:
    import soundfile

    utt, path = job
    samples = synthesise(utt)
    soundfile.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
    return len(samples) / SAMPLE_RATE


def make_split(
    split: str,
    count: int,
    workers: int,
    exclude: frozenset[str],
    rarity: corpus.Rarity | None = None,
) -> Path:
    """Synthesise one split into WORK/<split>/ and write its NeMo manifest."""
    texts = corpus.sentences(split, count, SEED, exclude, rarity or corpus.Rarity())
    utts = corpus.utterances(split, texts, SEED)
    folder = WORK / split
    manifest = WORK / f"{split}.json"
    stamp = WORK / f"{split}.spec.json"
    spec = json.dumps([asdict(u) for u in utts])
    if manifest.exists() and stamp.exists() and stamp.read_text() == spec:
        return manifest
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jobs = [(u, str(folder / f"{u.name}.wav")) for u in utts]
    start = time.time()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        durations = list(pool.imap(write_clip, jobs, chunksize=16))
    lines = [json.dumps({"audio_filepath": path, "duration": round(d, 4), "text": u.text,
                         "voice": u.voice}) for (u, path), d in zip(jobs, durations, strict=True)]  # fmt: skip
    manifest.write_text("\n".join(lines) + "\n")
    stamp.write_text(spec)
    print(f"{split}: {count} clips, {sum(durations) / 3600:.2f} h of audio, "
          f"{time.time() - start:.0f} s", flush=True)  # fmt: skip
    return manifest


def read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


# ----------------------------------------------------------------------------- TDT loss on CPU


def tdt_lattice():
    """The TDT forward-backward pass over one batch, compiled with numba (float64)."""
    import numba

    @numba.njit(cache=False)
    def lattice(blank, emit, dur, durations, act_lens, label_lens):
        """blank (B, T, U+1), emit (B, T, U), dur (B, T, U+1, D) log-probabilities.

        Returns log P(labels | audio) per item and its derivatives with respect to each
        log-probability: the posterior occupancy of every arc that uses it.
        """
        batch = blank.shape[0]
        n_dur = durations.shape[0]
        neg = -1e300
        logp = np.zeros(batch)
        g_blank = np.zeros(blank.shape)
        g_emit = np.zeros(emit.shape)
        g_dur = np.zeros(dur.shape)
        for b in range(batch):
            big_t, big_u = act_lens[b], label_lens[b]
            alpha = np.full((big_t, big_u + 1), neg)
            beta = np.full((big_t, big_u + 1), neg)
            alpha[0, 0] = 0.0
            for t in range(big_t):
                for u in range(big_u + 1):
                    acc = alpha[t, u]
                    for n in range(n_dur):
                        d = durations[n]
                        s = t - d
                        if s < 0:
                            continue
                        if d > 0:
                            v = alpha[s, u] + blank[b, s, u] + dur[b, s, u, n]
                            acc = max(acc, v) + np.log1p(np.exp(-abs(acc - v)))
                        if u > 0:
                            v = alpha[s, u - 1] + emit[b, s, u - 1] + dur[b, s, u - 1, n]
                            acc = max(acc, v) + np.log1p(np.exp(-abs(acc - v)))
                    alpha[t, u] = acc
            for t in range(big_t - 1, -1, -1):
                for u in range(big_u, -1, -1):
                    acc = neg
                    for n in range(n_dur):
                        d = durations[n]
                        if d > 0:  # blank: to (t + d, u), or the end exactly at T with all labels
                            if t + d < big_t:
                                v = blank[b, t, u] + dur[b, t, u, n] + beta[t + d, u]
                                acc = max(acc, v) + np.log1p(np.exp(-abs(acc - v)))
                            elif t + d == big_t and u == big_u:
                                v = blank[b, t, u] + dur[b, t, u, n]
                                acc = max(acc, v) + np.log1p(np.exp(-abs(acc - v)))
                        if u < big_u and t + d < big_t:  # label u + 1: to (t + d, u + 1)
                            v = emit[b, t, u] + dur[b, t, u, n] + beta[t + d, u + 1]
                            acc = max(acc, v) + np.log1p(np.exp(-abs(acc - v)))
                    beta[t, u] = acc
            total = beta[0, 0]
            logp[b] = total
            for t in range(big_t):
                for u in range(big_u + 1):
                    a = alpha[t, u]
                    if a <= neg / 2:
                        continue
                    for n in range(n_dur):
                        d = durations[n]
                        if d > 0:
                            if t + d < big_t:
                                occ = np.exp(
                                    a + blank[b, t, u] + dur[b, t, u, n] + beta[t + d, u] - total
                                )
                            elif t + d == big_t and u == big_u:
                                occ = np.exp(a + blank[b, t, u] + dur[b, t, u, n] - total)
                            else:
                                occ = 0.0
                            g_blank[b, t, u] += occ
                            g_dur[b, t, u, n] += occ
                        if u < big_u and t + d < big_t:
                            occ = np.exp(
                                a + emit[b, t, u] + dur[b, t, u, n] + beta[t + d, u + 1] - total
                            )
                            g_emit[b, t, u] += occ
                            g_dur[b, t, u, n] += occ
        return logp, g_blank, g_emit, g_dur

    return lattice


def tdt_loss_cpu_class():
    import torch

    lattice = tdt_lattice()

    class TDTLossCPU(torch.nn.Module):
        """The TDT transducer loss (negative log-likelihood) for CPU tensors.

        `acts` (B, T, U + 1, V + 1 + len(durations)): label logits (blank last) then
        duration logits, as NeMo's `RNNTJoint` gives them; sigma is NeMo's logit
        under-normalisation. alpha[t, u] sums the paths that reach frame t with u labels:
        blanks (duration >= 1) from (t - d, u), labels (duration >= 0) from (t - d, u - 1);
        the last arc is a blank that lands exactly on the end. The forward-backward pass
        (numba) gives log P and each arc's posterior, which is the derivative of log P with
        respect to the arc's log-probability; autograd takes it through the log-softmaxes.
        """

        def __init__(self, blank: int, durations: list[int], sigma: float = 0.0) -> None:
            super().__init__()
            self.blank = blank
            self.durations = np.array(durations, dtype=np.int64)
            self.sigma = sigma
            self.reduction = None  # RNNTLoss sets and resets this; it reduces itself

        def forward(self, acts, labels, act_lens, label_lens):
            n_dur = len(self.durations)
            label_lp = torch.log_softmax(acts[..., :-n_dur], dim=-1) - self.sigma
            dur_lp = torch.log_softmax(acts[..., -n_dur:], dim=-1)
            batch, frames, states, _ = label_lp.shape
            labels = labels[:, : states - 1].long()
            emit = label_lp[:, :, :-1, :].gather(
                -1, labels[:, None, :, None].expand(batch, frames, states - 1, 1)
            )[..., 0]
            blank = label_lp[..., self.blank]
            logp, g_blank, g_emit, g_dur = lattice(
                blank.detach().double().numpy(), emit.detach().double().numpy(),
                dur_lp.detach().double().numpy(), self.durations,
                act_lens.long().numpy(), label_lens.long().numpy(),
            )  # fmt: skip
            as_t = lambda a: torch.from_numpy(a).to(acts.dtype)  # noqa: E731
            surrogate = ((as_t(g_blank) * blank).sum((1, 2)) + (as_t(g_emit) * emit).sum((1, 2))
                         + (as_t(g_dur) * dur_lp).sum((1, 2, 3)))  # fmt: skip
            nll = -as_t(logp)
            return nll - surrogate + surrogate.detach()

    return TDTLossCPU


def check_loss() -> None:
    """TDTLossCPU against NeMo's pure-PyTorch TDT loss (its .cuda() calls made no-ops)."""
    import torch
    from nemo.collections.asr.losses.rnnt_pytorch import TDTLossPytorch

    torch.manual_seed(0)
    batch, frames, states, vocab = 3, 9, 5, 6
    acts = torch.randn(batch, frames, states, vocab + 1 + len(DURATIONS), dtype=torch.float64)
    labels = torch.randint(0, vocab, (batch, states - 1))
    act_lens = torch.tensor([9, 7, 5])
    label_lens = torch.tensor([4, 2, 3])
    ours = tdt_loss_cpu_class()(vocab, DURATIONS, sigma=0.02)
    loss = ours(acts, labels, act_lens, label_lens)
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        ref = TDTLossPytorch(blank=vocab, durations=DURATIONS, reduction="none", sigma=0.02)
        expected = torch.stack([ref(acts=acts[b : b + 1].float(), labels=labels[b : b + 1],
                                    act_lens=act_lens[b : b + 1], label_lens=label_lens[b : b + 1])[0]
                                for b in range(batch)])  # fmt: skip
    finally:
        torch.Tensor.cuda = cuda  # type: ignore[method-assign]
    diff = float((loss.float() - expected).abs().max())
    print(
        f"TDT loss: ours {loss.tolist()}\n          NeMo {expected.tolist()}  max diff {diff:.2e}"
    )
    assert diff < 1e-3, diff
    acts.requires_grad_(True)
    torch.autograd.gradcheck(lambda a: ours(a, labels, act_lens, label_lens).sum(), (acts,),
                             eps=1e-6, atol=1e-5, nondet_tol=1e-12)  # fmt: skip
    print("gradient: autograd matches finite differences")


# ----------------------------------------------------------------------------- model


def train_tokenizer(manifest: Path, folder: Path) -> dict[str, str]:
    """BPE SentencePiece on the training transcripts with NeMo's helper, byte-stable."""
    import sentencepiece
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    folder.mkdir(parents=True, exist_ok=True)
    texts = [row["text"] for row in read_manifest(manifest)]
    (folder / "corpus.txt").write_text("\n".join(texts) + "\n")
    sentencepiece.set_random_generator_seed(SEED)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        create_spt_model("corpus.txt", vocab_size=VOCAB_SIZE, sample_size=-1,
                         do_lower_case=True, tokenizer_type="bpe", output_dir=".")  # fmt: skip
    finally:
        os.chdir(cwd)
    return {"dir": str(folder), "type": "bpe"}


def model_config(args: argparse.Namespace, tokenizer: dict[str, str], manifests: dict[str, Path],
                 steps: int) -> dict[str, Any]:  # fmt: skip
    """NVIDIA's FastConformer-TDT layout (parakeet-tdt), at demo size."""
    d, pred = args.d_model, args.pred_hidden
    data = {"sample_rate": SAMPLE_RATE, "batch_size": args.batch_size, "num_workers": 0,
            "pin_memory": False, "trim_silence": False, "max_duration": 20.0,
            "use_start_end_token": False}  # fmt: skip
    return {
        "sample_rate": SAMPLE_RATE,
        "tokenizer": tokenizer,
        "train_ds": {
            **data,
            "manifest_filepath": str(bucketed(manifests["train"], args.batch_size)),
            "shuffle": False,
        },
        "validation_ds": {**data, "manifest_filepath": str(manifests["val"]), "shuffle": False},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": SAMPLE_RATE,
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": 80,
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            "dither": 1e-5,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 1,
            "time_masks": 1,
            "freq_width": 15,
            "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80,
            "feat_out": -1,
            "n_layers": args.layers,
            "d_model": d,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": args.sub_channels,
            "causal_downsampling": False,
            "ff_expansion_factor": args.ff_expansion,
            "self_attention_model": "rel_pos",
            "n_heads": args.heads,
            "att_context_size": [-1, -1],
            "att_context_style": "regular",
            "xscaling": True,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": 0.1,
            "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
        },
        "model_defaults": {
            "enc_hidden": d,
            "pred_hidden": pred,
            "joint_hidden": pred,
            "tdt_durations": DURATIONS,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {"pred_hidden": pred, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.1},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": False,
            "num_extra_outputs": len(DURATIONS),
            "jointnet": {
                "joint_hidden": pred,
                "activation": "relu",
                "dropout": 0.1,
                "encoder_hidden": d,
                "pred_hidden": pred,
            },
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": "tdt",
            "durations": DURATIONS,
            "greedy": {"max_symbols": 10},
        },
        "aux_ctc": {
            "ctc_loss_weight": 0.3,
            "use_cer": False,
            "ctc_reduction": "mean_batch",
            "decoder": {
                "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                "feat_in": d,
                "num_classes": -1,
                "vocabulary": [],
            },
            "decoding": {"strategy": "greedy_batch"},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {
                "fastemit_lambda": 0.0,
                "clamp": -1.0,
                "durations": DURATIONS,
                "sigma": 0.02,
                "omega": 0.0,
            },
        },
        "optim": {
            "name": "adamw",
            "lr": args.lr,
            "betas": [0.9, 0.98],
            "weight_decay": 1e-3,
            "sched": {
                "name": "CosineAnnealing",
                "warmup_steps": args.warmup,
                "min_lr": 1e-5,
                "max_steps": steps,
            },
        },
    }


def build_callbacks(args: argparse.Namespace, started: float):
    import lightning.pytorch as pl

    class KeepBest(pl.Callback):
        """Keeps the weights of the best validation WER and prints one line per validation."""

        def __init__(self) -> None:
            self.best = float("inf")
            self.state: dict[str, Any] | None = None
            self.history: list[dict[str, float]] = []
            self.last = time.time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step % args.print_every == 0:
                loss = float(outputs["loss"]) if isinstance(outputs, dict) else float("nan")
                print(f"  step {trainer.global_step:6d}  loss {loss:7.3f}  "
                      f"{(time.time() - started) / 60:.1f} min", flush=True)  # fmt: skip

        def on_validation_end(self, trainer, pl_module) -> None:
            if trainer.sanity_checking:
                return
            metrics = trainer.callback_metrics
            wer = float(metrics["val_wer"])
            row = {"epoch": trainer.current_epoch, "step": trainer.global_step, "val_wer": wer,
                   "val_wer_ctc": float(metrics.get("val_wer_ctc", float("nan"))),
                   "train_loss": float(metrics.get("train_loss", float("nan"))),
                   "minutes": (time.time() - started) / 60}  # fmt: skip
            self.history.append(row)
            if wer < self.best:
                self.best = wer
                self.state = copy.deepcopy(pl_module.state_dict())
            self.last = time.time()
            print(f"epoch {row['epoch']:3d}  step {row['step']:6d}  train loss {row['train_loss']:7.3f}  "
                  f"val WER {wer:.4f} (CTC {row['val_wer_ctc']:.4f})  best {self.best:.4f}  {row['minutes']:.1f} min", flush=True)  # fmt: skip

    stop = pl.callbacks.EarlyStopping(monitor="val_wer", mode="min", patience=args.patience,
                                      stopping_threshold=args.target_wer, check_finite=True)  # fmt: skip
    return KeepBest(), stop


def bucketed(manifest: Path, batch_size: int) -> Path:
    """The manifest in batches of similar duration, the batches in a seeded random order:
    little padding per batch (the CPU's time goes to speech, not zeros). The training
    loader reads it in this order (`shuffle: false`)."""
    rows = sorted(read_manifest(manifest), key=lambda r: (r["duration"], r["audio_filepath"]))
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    random.Random(SEED).shuffle(batches)
    out = manifest.with_name(manifest.stem + f"-batches{batch_size}.json")
    out.write_text("".join(json.dumps(r) + "\n" for batch in batches for r in batch))
    return out


def train(args: argparse.Namespace, manifests: dict[str, Path]) -> tuple[Path, dict[str, Any]]:
    import lightning.pytorch as pl
    import torch
    from nemo.collections.asr.models import EncDecHybridRNNTCTCBPEModel
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(nemo_logging.WARNING)
    torch.set_num_threads(args.threads)
    pl.seed_everything(SEED, workers=True)
    tokenizer = train_tokenizer(manifests["train"], WORK / "tokenizer")
    n_train = len(read_manifest(manifests["train"]))
    steps = args.epochs * ((n_train + args.batch_size - 1) // args.batch_size)
    cfg = model_config(args, tokenizer, manifests, steps)
    started = time.time()
    keep, stop = build_callbacks(args, started)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=args.epochs, max_steps=steps,
        max_time={"minutes": args.max_minutes}, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[keep, stop],
        num_sanity_val_steps=0, log_every_n_steps=100, deterministic=True,
        gradient_clip_val=1.0, val_check_interval=args.val_every,
    )  # fmt: skip
    from omegaconf import OmegaConf

    model = EncDecHybridRNNTCTCBPEModel(cfg=OmegaConf.create(cfg), trainer=trainer)
    model.loss._loss = tdt_loss_cpu_class()(model.decoder.blank_idx, DURATIONS, sigma=0.02)
    if args.init_from is not None:  # a second stage: continue from an earlier run's weights
        from nemo.collections.asr.models import ASRModel

        init = ASRModel.restore_from(str(args.init_from), map_location=torch.device("cpu"))
        assert init.tokenizer.vocab == model.tokenizer.vocab, "the tokenizer differs"
        model.load_state_dict(init.state_dict())
        print(f"initialised from {args.init_from}", flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters, {n_train} training clips, up to {steps} steps",
          flush=True)  # fmt: skip
    trainer.fit(model)
    minutes = (time.time() - started) / 60
    assert keep.state is not None, "no validation ran"
    model.load_state_dict(keep.state)
    with_cfg = model.cfg
    from omegaconf import open_dict

    with open_dict(with_cfg):  # the saved model needs no paths of this machine
        for key in ("train_ds", "validation_ds"):
            with_cfg[key]["manifest_filepath"] = None
    model.cfg = with_cfg
    out = WORK / "demo.nemo"
    model.save_to(str(out))
    info = {"parameters": params, "train_minutes": round(minutes, 1), "best_val_wer": keep.best,
            "history": keep.history, "stopped_epoch": trainer.current_epoch}  # fmt: skip
    return out, info


def evaluate(nemo_file: Path, manifest: Path) -> tuple[float, list[str]]:
    """NeMo's WER of the restored `.nemo` on a manifest (its own `transcribe`)."""
    import torch
    from nemo.collections.asr.metrics.wer import word_error_rate
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(nemo_file), map_location=torch.device("cpu")).eval()
    rows = read_manifest(manifest)
    hyps = model.transcribe([r["audio_filepath"] for r in rows], batch_size=16, verbose=False)
    texts = [h.text for h in hyps]
    return word_error_rate(texts, [r["text"] for r in rows]), texts


# ----------------------------------------------------------------------------- outputs


def write_outputs(nemo_file: Path, test_manifest: Path, info: dict[str, Any]) -> None:
    """The package's model and example clip, and the committed held-out subset (FLAC)."""
    import soundfile

    PACKAGE_DATA.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(nemo_file, PACKAGE_DATA / "demo.nemo")
    soundfile.write(
        PACKAGE_DATA / "example.wav", synthesise(EXAMPLE), SAMPLE_RATE, subtype="PCM_16"
    )
    shutil.rmtree(HELDOUT, ignore_errors=True)
    (HELDOUT / "clips").mkdir(parents=True)
    rows = read_manifest(test_manifest)[:COMMITTED_HELDOUT]
    clips = []
    for row in rows:
        name = Path(row["audio_filepath"]).stem + ".flac"
        samples, rate = soundfile.read(row["audio_filepath"], dtype="int16")
        soundfile.write(HELDOUT / "clips" / name, samples, rate, format="FLAC", subtype="PCM_16")
        clips.append({"file": f"clips/{name}", "text": row["text"], "voice": row["voice"]})
    (HELDOUT / "heldout.json").write_text(json.dumps({
        "generated_by": "python tools/train_demo_model.py", "seed": SEED,
        "about": "held-out espeak-ng clips: voice variants and sentences never trained on",
        "example": asdict(EXAMPLE), "training": info, "clips": clips}, indent=1) + "\n")  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a few-minute trial: small data, 2 epochs")
    p.add_argument(
        "--check-loss", action="store_true", help="only compare the TDT loss with NeMo's"
    )
    p.add_argument("--train-clips", type=int, default=10000)
    p.add_argument("--val-clips", type=int, default=200)
    p.add_argument("--test-clips", type=int, default=300)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-minutes", type=float, default=60.0)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--target-wer", type=float, default=0.0)
    p.add_argument(
        "--val-every", type=float, default=0.5, help="validate every this much of an epoch"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--d-model", type=int, default=96)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff-expansion", type=int, default=4)
    p.add_argument("--sub-channels", type=int, default=32)
    p.add_argument("--pred-hidden", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--print-every", type=int, default=25)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="do not write the committed outputs")
    p.add_argument("--init-from", type=Path, help="start from this .nemo's weights (same data)")
    p.add_argument(
        "--rare", default="", help="comma-separated words kept in at most --rare-max training "
        "sentences each (the rare-word benchmark); implies --no-write"
    )  # fmt: skip
    p.add_argument("--rare-max", type=int, default=5)
    p.add_argument("--work", type=Path, default=WORK, help="data and model folder (git-ignored)")
    args = p.parse_args()
    if args.rare:
        args.no_write = True
    if args.quick:
        args.train_clips, args.val_clips, args.test_clips = 2000, 100, 100
        args.epochs, args.max_minutes, args.no_write = 4, 10.0, True
    return args


def main() -> int:
    args = parse_args()
    if args.check_loss:
        check_loss()
        return 0
    global WORK
    WORK = args.work
    rarity = corpus.Rarity(frozenset(w for w in args.rare.split(",") if w), args.rare_max)
    random.seed(SEED)
    WORK.mkdir(parents=True, exist_ok=True)
    with cpu_busy():
        check_loss()
        start = time.time()
        reserved = frozenset({EXAMPLE.text})
        manifests = {
            split: make_split(split, count, args.workers, reserved, rarity)
            for split, count in (("train", args.train_clips), ("val", args.val_clips),
                                 ("test", args.test_clips))
        }  # fmt: skip
        data_minutes = (time.time() - start) / 60
        nemo_file, info = train(args, manifests)
        wer, _ = evaluate(nemo_file, manifests["test"])
    hours = sum(r["duration"] for r in read_manifest(manifests["train"])) / 3600
    info.update({"train_clips": args.train_clips, "train_hours": round(hours, 2),
                 "data_minutes": round(data_minutes, 1), "heldout_clips": args.test_clips,
                 "heldout_wer": wer, "nemo_file_bytes": nemo_file.stat().st_size,
                 "args": vars(args)})  # fmt: skip
    (WORK / "result.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
    print(f"held-out WER (NeMo, {args.test_clips} clips, unseen voices and sentences): {wer:.4f}")
    print(f".nemo: {nemo_file.stat().st_size / 1e6:.2f} MB; training {info['train_minutes']} min")
    if not args.no_write:
        write_outputs(nemo_file, manifests["test"], info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
