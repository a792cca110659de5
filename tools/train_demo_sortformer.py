"""Train the demo Sortformer: a small `SortformerEncLabelModel` (diar_sortformer_4spk-v1's layout,
sizes shrunk) on espeak-ng conversations, on the CPU, with NeMo's own training step and loss.

Needs the `reference` group (NeMo 3.0.0, torch) and espeak-ng. From the repository root:

    python tools/train_demo_sortformer.py               # the committed model (35 min, 1 thread)
    python tools/train_demo_sortformer.py --minutes 3   # a trial
    python tests/reference/make_diarization_testset.py  # then NeMo's output and DER on the test set

Steps, all seeded:
1. A pool of speech: `--speakers` training voices (`conversations.speakers("train")`: the demo
   corpus's training accents and variants, pitch and speed drawn), each saying
   `--clips-per-speaker` training sentences of the demo corpus; espeak-ng, silences cut.
2. Conversations drawn from the pool on the fly (`conversations.place`: 1-4 speakers taking
   turns, pauses and overlaps, white noise on most), the targets from the true turns with
   NeMo's own `get_mask_from_segments` / `get_soft_mask` (arrival-time order, 80 ms frames), as
   NeMo's lhotse dataset (`speaker_to_target`) makes them.
3. `SortformerEncLabelModel` from NeMo's recipe (`tests/reference/configs/diar_sortformer_4spk-v1.yaml`)
   with the fixtures' shrink (`make_sortformer_fixtures.build_config`) and `SIZES` below;
   dropouts lowered (`DROPOUT`): a model this small trained this briefly underfits, it does
   not overfit. Trained by Lightning's `Trainer` on NeMo's `training_step` (PIL + ATS BCE
   loss, weights 0.5/0.5 as the recipe), AdamW with NeMo's cosine schedule, for at most
   `--minutes` of wall time with one torch thread (the machine is shared).
   While it runs, /tmp/cpu-busy.lock exists (others skip timing runs).
4. `save_to` the `.nemo` (tests/fixtures/diarization/demo_sortformer.nemo) and a JSON of how.

The test set (`tests/reference/make_diarization_testset.py`) uses other voices (the test
variants and accents) and other sentences (the demo corpus's test split).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
import conversations as conv
import demo_corpus as corpus
from train_demo_model import cpu_busy

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".benchmarks-cache" / "demo-sortformer"
OUT = ROOT / "tests" / "fixtures" / "diarization"
SEED = 2121
NAME = "diar_sortformer_4spk-v1"
# on top of make_sortformer_fixtures.SHRINK (encoder d_model 64, 4 heads, 32 conv channels)
SIZES = {
    "encoder.n_layers": 4,
    "model_defaults.tf_d_model": 64,
    "sortformer_modules.tf_d_model": 64,
    "transformer_encoder.hidden_size": 64,
    "transformer_encoder.inner_size": 128,
    "transformer_encoder.num_layers": 2,
}
DROPOUT = {
    "sortformer_modules.dropout_rate": 0.1,
    "transformer_encoder.attn_score_dropout": 0.1,
    "transformer_encoder.attn_layer_dropout": 0.1,
    "transformer_encoder.ffn_dropout": 0.1,
}
SPEAKER_COUNTS = {1: 0.1, 2: 0.45, 3: 0.35, 4: 0.1}
FRAME_SAMPLES = 160 * 8  # one 80 ms Sortformer frame


def make_pool(args: argparse.Namespace) -> dict[str, list[np.ndarray]]:
    """Each training speaker's clips (cached in WORK: espeak-ng takes a few minutes)."""
    people = conv.speakers("train", args.speakers, SEED)
    texts = corpus.sentences("train", args.speakers * args.clips_per_speaker, SEED)
    cache = WORK / f"pool-{args.speakers}x{args.clips_per_speaker}.npz"
    if cache.exists():
        data = np.load(cache)
        return {
            p.name: [data[f"{p.name}/{k}"] for k in range(args.clips_per_speaker)] for p in people
        }
    started = time.time()
    pool = {}
    for i, person in enumerate(people):
        mine = texts[i * args.clips_per_speaker : (i + 1) * args.clips_per_speaker]
        pool[person.name] = [conv.speech(person, text) for text in mine]
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **{f"{n}/{k}": c for n, clips in pool.items() for k, c in enumerate(clips)})
    seconds = sum(len(c) for clips in pool.values() for c in clips) / conv.SAMPLE_RATE
    print(f"pool: {len(people)} speakers, {seconds / 3600:.2f} h of speech, "
          f"{time.time() - started:.0f} s", flush=True)  # fmt: skip
    return pool


def nemo_targets(turns: list[conv.Turn], num_samples: int, speakers: int = 4):
    """NeMo's training targets of one conversation: `get_mask_from_segments` at 10 ms then
    `get_soft_mask` per 80 ms frame, binarised at 0.5 (speakers in arrival order), exactly the
    steps of NeMo's `speaker_to_target`."""
    from nemo.collections.asr.parts.utils.asr_multispeaker_utils import (
        get_hidden_length_from_sample_length,
        get_mask_from_segments,
        get_soft_mask,
    )

    order: list[str] = []
    for t in sorted(turns, key=lambda t: t.start):
        if t.speaker not in order:
            order.append(t.speaker)
    cut = SimpleNamespace(duration=num_samples / conv.SAMPLE_RATE)
    segments = [SimpleNamespace(start=t.start, end=t.end, speaker=t.speaker) for t in turns]
    frames = get_hidden_length_from_sample_length(num_samples, 160, 8)
    mask = get_mask_from_segments(segments, cut, {s: i for i, s in enumerate(order)}, speakers, 100)
    return (get_soft_mask(mask, frames, 8) > 0.5).float()


class Conversations:
    """Conversation `i` drawn from the pool with a generator seeded by `i` (a map dataset)."""

    def __init__(self, pool: dict[str, list[np.ndarray]], size: int) -> None:
        self.pool, self.size = pool, size
        self.people = conv.speakers("train", len(pool), SEED)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        import torch

        rng = random.Random(f"{SEED}-conversation-{i}")
        count = rng.choices(list(SPEAKER_COUNTS), weights=list(SPEAKER_COUNTS.values()))[0]
        chosen: list[conv.Speaker] = []
        for person in rng.sample(self.people, len(self.people)):
            if all(person.voice.split("+")[-1] != c.voice.split("+")[-1] for c in chosen):
                chosen.append(person)
            if len(chosen) == count:
                break
        order = conv.choose_turns(rng, [p.name for p in chosen], rng.randint(max(count, 3), 9))
        clips = [(name, "", rng.choice(self.pool[name])) for name in order]
        mix, turns = conv.place(rng, clips, conv.Timing())
        audio = conv.add_noise(rng, mix, None if rng.random() < 0.25 else rng.uniform(15.0, 40.0))
        targets = nemo_targets(turns, len(audio))
        return torch.from_numpy(audio), targets


def collate(items):
    import torch

    audio_lens = torch.tensor([len(a) for a, _ in items])
    target_lens = torch.tensor([len(t) for _, t in items])
    audio = torch.zeros(len(items), int(audio_lens.max()))
    targets = torch.zeros(len(items), int(target_lens.max()), 4)
    for k, (a, t) in enumerate(items):
        audio[k, : len(a)] = a
        targets[k, : len(t)] = t
    return audio, audio_lens, targets, target_lens


def model_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    import make_sortformer_fixtures as fixtures

    config, changed = fixtures.build_config(NAME)
    for dotted, value in {**SIZES, **DROPOUT}.items():
        fixtures._put(config, dotted, value)
        changed[dotted] = value
    config["fc_d_model"] = config["model_defaults"]["fc_d_model"]
    config["tf_d_model"] = config["model_defaults"]["tf_d_model"]
    config["optim"] = {
        "name": "adamw", "lr": args.lr, "betas": [0.9, 0.98], "weight_decay": 1e-3,
        "sched": {"name": "CosineAnnealing", "warmup_steps": args.warmup, "min_lr": 1e-5,
                  "max_steps": args.max_steps},
    }  # fmt: skip
    return config, changed


def train(args: argparse.Namespace) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    from nemo.collections.asr.models import SortformerEncLabelModel
    from nemo.utils import logging as nemo_logging
    from omegaconf import OmegaConf

    nemo_logging.setLevel(nemo_logging.WARNING)
    torch.set_num_threads(1)
    pl.seed_everything(SEED, workers=True)
    pool = make_pool(args)
    data = Conversations(pool, args.max_steps * args.batch_size)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=False,
                                         collate_fn=collate, num_workers=0)  # fmt: skip
    config, changed = model_config(args)
    started = time.time()
    history: list[dict[str, float]] = []

    class Progress(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step % args.print_every == 0:
                loss = float(outputs["loss"])
                minutes = (time.time() - started) / 60
                history.append({"step": trainer.global_step, "loss": loss, "minutes": minutes})
                print(f"  step {trainer.global_step:6d}  loss {loss:.4f}  {minutes:.1f} min",
                      flush=True)  # fmt: skip

    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, max_steps=args.max_steps,
        max_time={"minutes": args.minutes}, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Progress()],
        num_sanity_val_steps=0, limit_val_batches=0, gradient_clip_val=1.0, deterministic=True,
    )  # fmt: skip
    model = SortformerEncLabelModel(cfg=OmegaConf.create(config), trainer=trainer)
    model.setup_optimization(OmegaConf.create(config["optim"]))
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters, up to {args.max_steps} steps", flush=True)
    trainer.fit(model, train_dataloaders=loader)
    minutes = (time.time() - started) / 60
    model.eval()
    OUT.mkdir(parents=True, exist_ok=True)
    nemo_file = OUT / "demo_sortformer.nemo"
    model.save_to(str(nemo_file))
    return {"parameters": params, "train_minutes": round(minutes, 1),
            "steps": trainer.global_step, "conversations_seen": trainer.global_step * args.batch_size,
            "changed_from_recipe": changed, "history": history,
            "nemo_file_bytes": nemo_file.stat().st_size}  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=34.0, help="wall-time budget of training")
    p.add_argument("--max-steps", type=int, default=3200)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--speakers", type=int, default=72)
    p.add_argument("--clips-per-speaker", type=int, default=24)
    p.add_argument("--print-every", type=int, default=25)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    with cpu_busy():
        info = train(args)
    info["args"] = vars(args)
    info["generated_by"] = "python tools/train_demo_sortformer.py " + " ".join(sys.argv[1:])
    (OUT / "demo_sortformer.training.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"trained {info['train_minutes']} min, {info['steps']} steps, "
          f".nemo {info['nemo_file_bytes'] / 1e6:.2f} MB", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
