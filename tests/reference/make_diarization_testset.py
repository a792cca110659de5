"""The multi-speaker test set: espeak-ng voices taking turns, with pauses and overlaps, and the
true turns as RTTM.

    python tests/reference/make_diarization_testset.py

Writes tests/fixtures/diarization/testset/<name>.flac (16 kHz, 16-bit), <name>.rttm (the truth)
and testset.json (each conversation's speakers, turns and settings). Deterministic: seeded
generators and espeak-ng 1.51 (`tools/conversations.py`). Voices and sentences are the demo
corpus's test ones (variants m7/f5/klatt2/quincy, held-out sentences), never in the training
data of `tools/train_demo_sortformer.py`. No NeMo here: `make_demo_sortformer_fixture.py`
records NeMo's diarization of these files.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import conversations as conv
import demo_corpus as corpus

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "diarization" / "testset"
SEED = 4242
# name -> (speakers, turns, white-noise SNR in dB or None, timing)
CONVERSATIONS = {
    "two_speakers": (2, 8, None, conv.Timing()),
    "two_speakers_noisy": (2, 7, 25.0, conv.Timing(overlap_share=0.4)),
    "three_speakers": (3, 8, 35.0, conv.Timing()),
    "three_speakers_pauses": (3, 7, None, conv.Timing(overlap_share=0.2, long_pause_share=0.4)),
    "four_speakers": (4, 8, 30.0, conv.Timing(overlap_share=0.25)),
}


def build(name: str, count: int, n_turns: int, snr_db: float | None, timing: conv.Timing,
          people: list[conv.Speaker], texts: list[str]) -> dict:  # fmt: skip
    """One conversation: `count` speakers of distinct variants, written as FLAC and RTTM."""
    rng = random.Random(f"{SEED}-{name}")
    chosen: list[conv.Speaker] = []
    for person in rng.sample(people, len(people)):
        if all(person.voice.split("+")[-1] != c.voice.split("+")[-1] for c in chosen):
            chosen.append(person)
        if len(chosen) == count:
            break
    by_name = {p.name: p for p in chosen}
    order = conv.choose_turns(rng, list(by_name), n_turns)
    clips = []
    for who in order:
        text = texts.pop()
        clips.append((who, text, conv.speech(by_name[who], text)))
    mix, turns = conv.place(rng, clips, timing)
    audio = conv.add_noise(rng, mix, snr_db)
    soundfile.write(OUT / f"{name}.flac", audio, conv.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    (OUT / f"{name}.rttm").write_text(conv.rttm(name, turns))
    return {
        "audio": f"{name}.flac",
        "rttm": f"{name}.rttm",
        "duration": round(len(audio) / conv.SAMPLE_RATE, 4),
        "snr_db": snr_db,
        "timing": asdict(timing),
        "speakers": [asdict(p) for p in chosen],
        "turns": [asdict(t) for t in turns],
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    people = conv.speakers("test", 16, SEED)
    texts = corpus.sentences("test", 200, SEED)
    random.Random(SEED).shuffle(texts)
    record = {
        "generated_by": "python tests/reference/make_diarization_testset.py",
        "espeak_ng": subprocess.run(
            ["espeak-ng", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "seed": SEED,
        "about": "espeak-ng voices taking turns with pauses and overlaps; test voices and "
        "sentences of the demo corpus, never in the demo Sortformer's training data",
        "conversations": {
            name: build(name, *spec, people=people, texts=texts)
            for name, spec in CONVERSATIONS.items()
        },
    }
    (OUT / "testset.json").write_text(json.dumps(record, indent=1) + "\n")
    for name, item in record["conversations"].items():
        size = (OUT / item["audio"]).stat().st_size
        print(f"{name}: {item['duration']:.1f} s, {len(item['turns'])} turns, {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
