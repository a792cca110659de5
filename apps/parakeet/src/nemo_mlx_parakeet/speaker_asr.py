"""`--diarize` on a multitalker checkpoint: the diarizer's speaker activity drives one
transcript per speaker (`multitalker.transcribe_speakers`), merged into one transcript whose
words and segments carry their speaker, as NeMo's multitalker inference writes its seglst
(each speaker's sentences, `speaker_<k>`, sorted by start time)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from mlx_audio_frontend import AudioError
from mlx_diarization import Diarizer
from speech_transcript import SpeakerTurn, Transcript

from .errors import ParakeetError
from .multitalker import ACTIVE, SpeakerTranscript, transcribe_speakers


def is_multitalker(model) -> bool:
    """A checkpoint with speaker kernels (NeMo's `EncDecMultiTalkerRNNTBPEModel`)."""
    return model.encoder.speaker_kernels is not None


def merge_speakers(results: Sequence[SpeakerTranscript], model: str, duration: float) -> Transcript:
    """One transcript of the speakers' transcripts: words, segments and tokens by start time,
    each word and segment labelled `speaker_<k>`; the turns are the labelled segments."""
    words, segments, tokens = [], [], []
    for result in results:
        label = f"speaker_{result.speaker}"
        words += [replace(w, speaker=label) for w in result.transcript.words]
        segments += [
            replace(s, speaker=label, words=tuple(replace(w, speaker=label) for w in s.words))
            for s in result.transcript.segments
        ]
        tokens += result.transcript.tokens
    words.sort(key=lambda w: w.start)
    segments.sort(key=lambda s: s.start)
    tokens.sort(key=lambda t: t.start)
    turns = [SpeakerTurn(s.start, s.end, s.speaker) for s in segments]
    text = " ".join(s.text for s in segments)
    return Transcript(text, duration, model, tokens, words, segments, speakers=turns)


def transcribe_by_speaker(model, audio, diarizer: Diarizer) -> Transcript:
    """`audio` transcribed per speaker: the diarizer's probabilities per frame, the speakers
    active (above 0.5) somewhere in the input, NeMo's offline multitalker pass for each.
    The diarizer's frames must be the model's (NeMo's multitalker inference checks that
    their strides and subsampling agree), or ParakeetError."""
    if not np.isclose(diarizer.frame_seconds, model.frame_seconds):
        raise ParakeetError(
            f"the diarizer's frames last {diarizer.frame_seconds:g} s and {model.name}'s "
            f"{model.frame_seconds:g} s: multitalker ASR needs the same frames (as NeMo's)"
        )
    signal = model.load_audio(audio)
    activity = np.asarray(diarizer.probabilities(signal), dtype=np.float32)
    active = [int(s) for s in np.flatnonzero(activity.max(axis=0) > ACTIVE)]
    results = transcribe_speakers(model, signal, activity, speakers=active) if active else []
    return merge_speakers(results, model.name, len(signal) / model.sample_rate)


def by_speaker(
    model, sources: Sequence, diarizer: Diarizer
) -> Iterator[tuple[int, Transcript | AudioError]]:
    """`transcribe_many`'s (index, result) pairs for `--diarize` on a multitalker checkpoint."""
    for index, source in enumerate(sources):
        try:
            yield index, transcribe_by_speaker(model, source, diarizer)
        except AudioError as err:
            yield index, err
