"""The CLI's streaming modes: `--streaming` on files (optionally `--realtime`) and `--mic`.

On a terminal the line is rewritten in place: the final text, then the tentative tail
dimmed. Elsewhere (a pipe, a file) each update that adds final text prints one plain line,
`<seconds of audio>\t<final text so far>`; the last line is the whole transcript.
End-of-utterance checkpoints add a line per marker as it becomes final,
`<seconds of audio>\tEOU\t<time of the marker>\t<the utterance's text>` (`EOB` for the end
of a backchannel); on a terminal the live line is kept and such a line printed after it.
With --diarize the text carries `[speaker_k]` where the speaker changes: live on
cache-aware transducer models, in the last line only on others (diarized when they end).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .eou import EndOfUtterance
from .errors import ParakeetError
from .streaming import StreamUpdate

FEED_SECONDS = 0.1  # audio per add_audio call, as a microphone callback would deliver it


class Display:
    """Shows stream updates: a live line on a TTY, plain lines otherwise."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self._last_final = None

    def show(self, update: StreamUpdate) -> None:
        final = labelled_text(update.final_text, update.speakers)
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            tentative = update.tentative_text
            text = (final + tentative)[-width:]
            cut = max(0, len(text) - len(tentative))
            line = text[:cut] + "\x1b[2m" + text[cut:] + "\x1b[0m"
            self.out.write("\r\x1b[K" + line)
            self.out.flush()
        elif update.final_text != self._last_final and update.final_text:
            self.out.write(f"{update.audio_seconds:.2f}\t{final}\n")
            self.out.flush()
        self._last_final = update.final_text
        for event in update.end_of_utterances:
            self.out.write(("\n" if self.live else "") + eou_line(event, update.audio_seconds))
            self.out.flush()

    def close(self, final_text: str, seconds: float, events=()) -> None:
        """The transcript's line, then the markers that the flush at the end made final."""
        if self.live:
            self.out.write("\r\x1b[K" + final_text + "\n")
        elif final_text != self._last_final:
            self.out.write(f"{seconds:.2f}\t{final_text}\n")
        for event in events:
            self.out.write(eou_line(event, seconds))
        self.out.flush()


def labelled_text(text: str, speakers: Sequence[str | None]) -> str:
    """`text` with `[speaker_k] ` before each word where the speaker changes (`speakers`:
    its words' speakers; words beyond them keep the last one), as the writers label turns."""
    if not any(speakers):
        return text
    parts, last = [], None
    for index, word in enumerate(text.split()):
        speaker = speakers[index] if index < len(speakers) else last
        if speaker != last and speaker is not None:
            parts.append(f"[{speaker}]")
        parts.append(word)
        last = speaker
    return " ".join(parts)


def eou_line(event: EndOfUtterance, audio_seconds: float) -> str:
    """The `--streaming` line of an end-of-utterance marker."""
    kind = "EOU" if event.kind == "utterance" else "EOB"
    return f"{audio_seconds:.2f}\t{kind}\t{event.time:.2f}\t{event.text}\n"


def pieces(samples: np.ndarray, sample_rate: int, realtime: bool) -> Iterable[np.ndarray]:
    """The samples in FEED_SECONDS pieces; with `realtime`, each when it would be spoken."""
    size = max(1, round(FEED_SECONDS * sample_rate))
    start = time.monotonic()
    for first in range(0, len(samples), size):
        if realtime:
            due = start + first / sample_rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield samples[first : first + size]
    if realtime:  # the last piece ends at its own time, not when it starts
        delay = start + len(samples) / sample_rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def run_stream(
    model, source: Iterable[np.ndarray], display: Display, interruptible: bool = False, **options
):
    """Feed `source` through a stream and the display; returns the final transcript.

    With `interruptible` (the microphone), Ctrl-C ends the input and the stream is
    finalized, so what was said is kept."""
    with model.transcribe_stream(**options) as stream:
        try:
            for piece in source:
                display.show(stream.add_audio(piece))
        except KeyboardInterrupt:
            if not interruptible:
                raise
        transcript = stream.finalize()
    last = stream.last_update
    text = labelled_text(transcript.text, [w.speaker for w in transcript.words])
    display.close(text, last.audio_seconds, last.end_of_utterances)
    return transcript


def microphone(sample_rate: int, stop: Callable[[], bool] = lambda: False) -> Iterable[np.ndarray]:
    """Mono float32 pieces from the default input device (the optional `sounddevice`)."""
    try:
        import sounddevice
    except ImportError:
        raise ParakeetError(
            "--mic needs the optional microphone support: pip install 'nemo-mlx-parakeet[mic]'"
        ) from None
    except OSError as err:  # sounddevice without the PortAudio library
        raise ParakeetError(
            f"--mic needs PortAudio (e.g. apt install libportaudio2): {err}"
        ) from None
    try:
        sounddevice.check_input_settings(channels=1, samplerate=sample_rate, dtype="float32")
        stream = sounddevice.InputStream(
            samplerate=sample_rate,
            channels=1,
            dtype="float32",
            blocksize=max(1, round(FEED_SECONDS * sample_rate)),
        )
    except Exception as err:  # PortAudioError, ValueError: no (usable) input device
        raise ParakeetError(f"no usable microphone: {err}") from None
    with stream:
        while not stop():
            data, _ = stream.read(stream.blocksize)
            yield np.asarray(data, dtype=np.float32)[:, 0]
