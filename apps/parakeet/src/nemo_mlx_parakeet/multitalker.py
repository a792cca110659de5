"""Multitalker ASR: a transcript per speaker from a multitalker checkpoint and speaker activity.

NeMo's `EncDecMultiTalkerRNNTBPEModel` (nvidia/multitalker-parakeet-streaming-0.6b-v1) runs
one instance of the model per speaker over the same audio, each conditioned by its speaker
kernels (`mlx_conformer.SpeakerKernels`) on the speaker's activity per encoder frame, as a
diarizer (Sortformer) gives it. For speaker k, as NeMo's `MultiTalkerInstanceManager`
builds them: the target mask is the activity of k, the background mask is 1 where any other
speaker's activity is above 0.5 (`binary`: the target mask too is thresholded at 0.5,
NeMo's `binary_diar_preds`).

- `streaming=False`: the whole input through the encoder once per speaker (all speakers in
  one batch), greedy decoding: NeMo's forward after `set_speaker_targets`.
- `streaming=True`: NeMo's parallel streaming (`SpeakerTaggedASR.perform_parallel_streaming_stt_spk`
  with given targets): cache-aware chunks of `context` (one of the checkpoint's [left,
  right]), each speaker with its own caches and decoder state, chunk i taking activity
  frames [i * (right + 1), (i + 1) * (right + 1)). With `cache_gating` (NeMo's default) a
  speaker's instance runs a chunk only if the speaker is above 0.5 somewhere in the last
  `GATING_CHUNKS` chunks of activity (its caches and decoder state wait otherwise), and
  the background of the k-th active speaker is, as NeMo's code has it, the active
  *positions* 0, 1, ... other than k's own index; without it every speaker runs every
  chunk with every other speaker as background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_conformer import SpeakerTargets
from mlx_conformer.streaming import CacheAwareStreamer, streaming_config
from mlx_transducer.streaming import GreedyStream
from speech_transcript import Transcript

from .decoding import decode, from_tokens
from .errors import ParakeetError

ACTIVE = 0.5  # NeMo's threshold of speaker activity (background speakers, binary targets)
GATING_CHUNKS = 2  # NeMo's `cache_gating_buffer_size`


@dataclass(frozen=True)
class SpeakerTranscript:
    """One speaker's transcript; `speaker` is the activity's column (the diarizer's index)."""

    speaker: int
    transcript: Transcript


def speaker_targets(
    activity: np.ndarray, speaker: int, binary: bool = False, others: Sequence[int] | None = None
) -> SpeakerTargets:
    """The masks of `speaker` from `activity` (T, N) as NeMo's parallel streaming builds them;
    the background is `others` (default: every other speaker)."""
    activity = np.asarray(activity, dtype=np.float32)
    if others is None:
        others = [i for i in range(activity.shape[1]) if i != speaker]
    background = (activity[:, others] > ACTIVE).any(-1).astype(np.float32)
    active = activity[:, speaker]
    if binary:
        active = (active > ACTIVE).astype(np.float32)
    return SpeakerTargets(mx.array(active[None]), mx.array(background[None]))


def check_activity(model, activity: np.ndarray, speakers: Sequence[int] | None) -> list[int]:
    """The speakers to transcribe; ParakeetError for a model without speaker kernels or
    activity that is not (frames, speakers) in [0, 1]."""
    if model.encoder.speaker_kernels is None:
        raise ParakeetError(
            f"{model.name} has no speaker kernels: per-speaker transcription needs a multitalker "
            "checkpoint (EncDecMultiTalkerRNNTBPEModel, e.g. nvidia/multitalker-parakeet-streaming-0.6b-v1)"
        )
    activity = np.asarray(activity)
    if activity.ndim != 2 or activity.shape[1] == 0:
        raise ParakeetError(
            f"speaker activity must be (frames, speakers), got shape {activity.shape}"
        )
    if not np.all(np.isfinite(activity)) or activity.min() < 0 or activity.max() > 1:
        raise ParakeetError("speaker activity must be probabilities in [0, 1]")
    chosen = list(range(activity.shape[1])) if speakers is None else list(speakers)
    if bad := [s for s in chosen if not 0 <= s < activity.shape[1]]:
        raise ParakeetError(f"speakers {bad} are not among the activity's {activity.shape[1]}")
    return chosen


def transcribe_speakers(
    model,
    audio,
    activity: np.ndarray,
    *,
    speakers: Sequence[int] | None = None,
    streaming: bool = False,
    context: Sequence[int] | None = None,
    binary: bool = False,
    cache_gating: bool = True,
) -> list[SpeakerTranscript]:
    """A transcript per speaker of `audio` (what `Parakeet.transcribe` takes, one input) from
    `activity` (T, N): each speaker's probability per encoder frame (e.g. Sortformer's).
    `speakers`: the columns to transcribe (default all); `streaming`, `context`: NeMo's
    cache-aware parallel streaming with that [left, right] (default the checkpoint's first),
    `cache_gating` its skipping of inactive speakers (streaming only)."""
    chosen = check_activity(model, activity, speakers)
    signal = model.load_audio(audio)
    features, lengths = model.frontend(signal[None])
    duration = len(signal) / model.sample_rate
    if streaming:
        gating = _Gating(np.asarray(activity, np.float32), binary, cache_gating)
        # every frame of the tensor, the preprocessor's masked last one too: NeMo's streaming
        # buffer counts it as audio (its chunk lengths, and so the masks' alignment, do)
        ids = [_stream(model, features[0], gating, s, context) for s in chosen]
    else:
        targets = [speaker_targets(activity, s, binary) for s in chosen]
        ids = _offline(model, features, lengths, targets)
    return [
        SpeakerTranscript(s, model.assemble(h, duration)) for s, h in zip(chosen, ids, strict=True)
    ]


def _offline(model, features: mx.array, lengths: mx.array, targets: list[SpeakerTargets]):
    """Every speaker's greedy hypothesis from one batched encoder pass."""
    batch = len(targets)
    stacked = SpeakerTargets(mx.concatenate([t.active for t in targets]),
                             mx.concatenate([t.background for t in targets]))  # fmt: skip
    features = mx.broadcast_to(features, (batch, *features.shape[1:])).astype(model.dtype)
    encoded, encoded_len = model.encoder(features, mx.repeat(lengths, batch), speakers=stacked)
    return decode(model.head, model.transducer, encoded, encoded_len, "greedy", 1)


@dataclass(frozen=True)
class _Gating:
    """Which speakers run each chunk, and their masks there (NeMo's parallel streaming)."""

    activity: np.ndarray  # (T, N)
    binary: bool
    gated: bool

    def active(self, step: int, size: int) -> list[int]:
        """The speakers that run chunk `step` (`_find_active_speakers` over the last chunks)."""
        if not self.gated:
            return list(range(self.activity.shape[1]))
        end = (step + 1) * size
        window = self.activity[max(0, end - size * GATING_CHUNKS) : end]
        if window.shape[0] == 0:
            return []
        return [int(s) for s in np.flatnonzero(window.max(axis=0) > ACTIVE)]

    def targets(self, step: int, size: int, speaker: int) -> SpeakerTargets:
        """`speaker`'s masks for chunk `step`; the background as NeMo's code picks it."""
        active = self.active(step, size)
        others = [i for i in range(len(active)) if i != speaker]
        chunk = self.activity[step * size : (step + 1) * size]
        return speaker_targets(chunk, speaker, self.binary, others)


def _stream(model, features: mx.array, gating: _Gating, speaker: int, context):
    """One speaker's cache-aware stream over `features` (T, F); its greedy hypothesis."""
    if not model.cache_aware:
        raise ParakeetError(f"{model.name} is not a cache-aware streaming checkpoint")
    choices = model.context_choices
    chosen = list(context) if context is not None else choices[0]
    if chosen not in choices:
        raise ParakeetError(f"context {chosen} is not one of the model's {choices}")
    size = chosen[1] + 1  # activity frames per chunk (NeMo's `_nframes_per_chunk`)
    streamer = CacheAwareStreamer(
        model.encoder,
        streaming_config(model.encoder, chosen),
        speakers=lambda step: gating.targets(step, size, speaker),
        active=lambda step: speaker in gating.active(step, size),
    )
    decoder = GreedyStream(model.transducer)
    decoder.feed(streamer.add(features.astype(model.dtype)))
    decoder.feed(streamer.finish())
    return from_tokens(decoder.tokens, model.head)
