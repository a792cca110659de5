"""Make the test clips in tests/fixtures/audio/ from espeak-ng speech.

Run from the repository root (needs espeak-ng, sox and ffmpeg on PATH):

    python tests/reference/make_audio.py

The clips cover every input path of the front end: containers and codecs (WAV, FLAC,
MP3, OGG/Vorbis), sample rates that need resampling, stereo, digital silence around the
speech, a clip shorter than one encoder frame and one whose length is not a multiple of
the hop. The manifest (clips.json) records what each clip is meant to exercise and the
tool versions that made it. Only numpy and the standard library are imported.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "audio"

# (file name, text, espeak voice, speed wpm, pitch, what it exercises)
SPEECH = [
    ("speech_16k_mono.wav", "The quick brown fox jumps over the lazy dog.", "en-us", 165, 50),
    ("speech_44k_stereo.wav", "Seven tired sailors counted forty birds at noon.", "en-gb", 150, 40),
    ("speech_22k.flac", "Please call Stella and ask her to bring these things.", "en-us", 175, 60),
    (
        "speech_24k.mp3",
        "Nine hundred and twelve people voted on Tuesday.",
        "en-gb-scotland",
        160,
        45,
    ),
    ("speech_48k.ogg", "A warm breeze drifted across the quiet harbour.", "en-us", 140, 70),
]
PURPOSE = {
    "speech_16k_mono.wav": "16 kHz mono PCM16 WAV: the model's native input, no resampling",
    "speech_44k_stereo.wav": "44.1 kHz stereo PCM16 WAV: down-mix and resampling (channels differ)",
    "speech_22k.flac": "22.05 kHz mono FLAC",
    "speech_24k.mp3": "24 kHz mono MP3",
    "speech_48k.ogg": "48 kHz mono OGG/Vorbis",
    "silence_padded_16k.wav": "1.0 s of digital zeros, speech, 1.5 s of digital zeros (16 kHz)",
    "shorter_than_frame_16k.wav": "1000 samples: less than one 8x-subsampled encoder frame (1280 samples)",
    "odd_length_16k.wav": "16 kHz, an odd number of samples that is not a multiple of the 160-sample hop",
}


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _espeak(text: str, voice: str, speed: int, pitch: int, path: Path) -> None:
    _run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text])


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels()), w.getframerate()


def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    samples = np.asarray(samples, dtype="<i2")
    if samples.ndim == 1:
        samples = samples[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(samples.tobytes())


def _tool_version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, text, voice, speed, pitch in SPEECH:
            raw = tmp / f"{name}.raw.wav"
            _espeak(text, voice, speed, pitch, raw)
            dest = OUT / name
            if name.endswith("stereo.wav"):
                # Right channel: 0.6x the left, 3 ms later, so a wrong down-mix is visible.
                mono = tmp / "mono44.wav"
                _run(["sox", str(raw), "-r", "44100", "-b", "16", str(mono)])
                left, sr = _read_wav(mono)
                left = left[:, 0].astype(np.int32)
                delay = int(0.003 * sr)
                right = np.zeros_like(left)
                right[delay:] = (0.6 * left[:-delay]).astype(np.int32)
                _write_wav(dest, np.stack([left, right], axis=1), sr)
            elif name.endswith(".wav"):
                _run(["sox", str(raw), "-r", "16000", "-b", "16", str(dest)])
            elif name.endswith(".flac"):
                _run(["sox", str(raw), "-r", "22050", "-b", "16", str(dest)])
            elif name.endswith(".mp3"):
                _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(raw), "-ar", "24000",
                      "-ac", "1", "-codec:a", "libmp3lame", "-b:a", "48k", str(dest)])  # fmt: skip
            elif name.endswith(".ogg"):
                _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(raw), "-ar", "48000",
                      "-ac", "1", "-codec:a", "libvorbis", "-q:a", "3", str(dest)])  # fmt: skip

        base, sr = _read_wav(OUT / "speech_16k_mono.wav")
        base = base[:, 0]
        zeros_before = np.zeros(16000, dtype=np.int16)
        zeros_after = np.zeros(24000, dtype=np.int16)
        _write_wav(
            OUT / "silence_padded_16k.wav", np.concatenate([zeros_before, base, zeros_after]), sr
        )
        # 1000 samples from the middle of a word: real signal, below one encoder frame.
        mid = len(base) // 3
        _write_wav(OUT / "shorter_than_frame_16k.wav", base[mid : mid + 1000], sr)
        odd_len = 16000 + 8001  # 1.5 s + 1 sample: odd, and 24001 % 160 == 1
        _write_wav(OUT / "odd_length_16k.wav", base[:odd_len], sr)

    manifest = {
        "generated_by": "python tests/reference/make_audio.py",
        "tools": {
            "espeak-ng": _tool_version(["espeak-ng", "--version"]),
            "sox": _tool_version(["sox", "--version"]),
            "ffmpeg": _tool_version(["ffmpeg", "-version"]),
        },
        "clips": {
            name: {"purpose": PURPOSE[name]}
            | ({"text": t} if (t := next((s[1] for s in SPEECH if s[0] == name), None)) else {})
            for name in PURPOSE
        },
    }
    (OUT / "clips.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name in PURPOSE:
        print(f"{name:28s} {(OUT / name).stat().st_size:8d} bytes")


if __name__ == "__main__":
    main()
