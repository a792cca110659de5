"""Multi-speaker conversations spoken by espeak-ng voices taking turns, with their true turns.

A conversation is a list of turns: one speaker (an espeak-ng voice with its own accent, variant,
pitch, speed and loudness) says one sentence of the demo corpus (`demo_corpus.py`). Turns follow
each other with pauses, and some start before the previous one ends (overlaps). Each turn's
speech is espeak-ng's output with its leading and trailing silence cut, so the true turn is
where the voice is heard; the truth is written as RTTM.

Everything is drawn from seeded generators: the same seed and split give the same voices,
sentences and timing, and espeak-ng 1.51 gives the same samples. The `train` split uses the
demo corpus's training sentences and voice variants; `test` uses held-out sentences and the
test variants (`demo_corpus.TEST_VARIANTS`), never heard in training.

Used by `tools/train_demo_sortformer.py` (training data) and
`tests/reference/make_diarization_testset.py` (the committed test set).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_corpus as corpus
from train_demo_model import SAMPLE_RATE, synthesise

TRIM_FRAME = 160  # 10 ms frames for cutting espeak-ng's silences
TRIM_LEVEL = 0.02  # a frame is speech where its peak reaches this share of the clip's peak


@dataclass(frozen=True)
class Speaker:
    """One espeak-ng voice as a person: the same settings for every turn it speaks."""

    name: str
    voice: str
    speed: int
    pitch: int
    gain_db: float


@dataclass(frozen=True)
class Turn:
    """A true turn: who spoke, what, and when (seconds)."""

    speaker: str
    text: str
    start: float
    end: float


def speakers(split: str, count: int, seed: int) -> list[Speaker]:
    """`count` distinct voices of a split: accent x variant, with pitch and speed drawn."""
    rng = random.Random(f"{seed}-{split}-speakers")
    accents = corpus.TRAIN_ACCENTS if split == "train" else corpus.TEST_ACCENTS
    variants = corpus.TRAIN_VARIANTS if split == "train" else corpus.TEST_VARIANTS
    out = []
    for i in range(count):
        out.append(
            Speaker(
                name=f"{split}_spk{i:03d}",
                voice=corpus.voice_name(rng.choice(accents), variants[i % len(variants)]),
                speed=rng.randint(130, 195),
                pitch=rng.randint(20, 80),
                gain_db=rng.uniform(-9.0, 0.0),
            )
        )
    return out


def speech(speaker: Speaker, text: str) -> np.ndarray:
    """espeak-ng's samples of one sentence (16 kHz), its leading and trailing silence cut."""
    utt = corpus.Utterance(
        name="turn", text=text, voice=speaker.voice, speed=speaker.speed, pitch=speaker.pitch,
        gap=0, snr_db=None, gain_db=speaker.gain_db, lead=0.0, tail=0.0, seed=0,
    )  # fmt: skip
    samples = synthesise(utt)
    frames = np.abs(samples[: len(samples) // TRIM_FRAME * TRIM_FRAME]).reshape(-1, TRIM_FRAME)
    loud = np.flatnonzero(frames.max(axis=1) >= TRIM_LEVEL * float(np.abs(samples).max()))
    if len(loud) == 0:
        return samples
    return samples[loud[0] * TRIM_FRAME : (loud[-1] + 1) * TRIM_FRAME]


@dataclass(frozen=True)
class Timing:
    """How turns follow each other: the share of overlaps and the ranges of pauses (s)."""

    overlap_share: float = 0.3
    overlap: tuple[float, float] = (0.3, 1.5)
    pause: tuple[float, float] = (0.1, 1.2)
    long_pause_share: float = 0.1
    long_pause: tuple[float, float] = (1.5, 3.0)
    lead: tuple[float, float] = (0.2, 1.0)
    tail: tuple[float, float] = (0.3, 1.0)


def place(
    rng: random.Random, clips: list[tuple[str, str, np.ndarray]], timing: Timing
) -> tuple[np.ndarray, list[Turn]]:
    """Mix (speaker, text, samples) turns one after another with pauses and overlaps (a
    speaker never overlaps their own earlier turn)."""
    turns: list[Turn] = []
    cursor = rng.uniform(*timing.lead)
    prev_start = 0.0
    for speaker, text, samples in clips:
        if turns:
            if rng.random() < timing.overlap_share:
                prev_len = turns[-1].end - prev_start
                cursor -= min(rng.uniform(*timing.overlap), 0.6 * prev_len)
                cursor = max([cursor] + [t.end + 0.1 for t in turns if t.speaker == speaker])
            elif rng.random() < timing.long_pause_share:
                cursor += rng.uniform(*timing.long_pause)
            else:
                cursor += rng.uniform(*timing.pause)
        start = round(cursor * SAMPLE_RATE) / SAMPLE_RATE
        end = start + len(samples) / SAMPLE_RATE
        turns.append(Turn(speaker, text, round(start, 4), round(end, 4)))
        prev_start, cursor = start, max(cursor, end)
    total = max(t.end for t in turns) + rng.uniform(*timing.tail)
    mix = np.zeros(int(np.ceil(total * SAMPLE_RATE)), np.float64)
    for turn, (_, _, samples) in zip(turns, clips, strict=True):
        at = round(turn.start * SAMPLE_RATE)
        mix[at : at + len(samples)] += samples
    return mix, turns


def add_noise(rng: random.Random, mix: np.ndarray, snr_db: float | None) -> np.ndarray:
    """White noise at `snr_db` below the mix's speech level; float32, clipped to [-1, 1)."""
    if snr_db is not None:
        loud = mix[np.abs(mix) > 1e-4]
        rms = float(np.sqrt(np.mean(loud**2))) if len(loud) else 0.0
        noise = np.random.default_rng(rng.randrange(2**31)).normal(0.0, 1.0, mix.shape)
        mix = mix + noise * rms / 10 ** (snr_db / 20)
    peak = float(np.max(np.abs(mix))) or 1.0
    if peak > 0.99:
        mix = mix * (0.99 / peak)
    return np.clip(mix, -1.0, 32767 / 32768).astype(np.float32)


def choose_turns(rng: random.Random, people: list[str], n_turns: int) -> list[str]:
    """Who speaks each turn: every speaker at least once, never the same twice in a row
    (one speaker alone says several sentences)."""
    order = list(people)
    rng.shuffle(order)
    while len(order) < n_turns:
        order.append(rng.choice([p for p in people if p != order[-1]] or people))
    return order[:n_turns] if n_turns >= len(people) else order


def rttm(name: str, turns: list[Turn]) -> str:
    """NIST RTTM lines of the true turns, in time order."""
    return "".join(
        f"SPEAKER {name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in sorted(turns, key=lambda t: (t.start, t.speaker))
    )


def labels(turns: list[Turn]) -> list[str]:
    """NeMo's label strings ("start end speaker") of the true turns, in time order."""
    return [f"{t.start:.3f} {t.end:.3f} {t.speaker}" for t in sorted(turns, key=lambda t: t.start)]
