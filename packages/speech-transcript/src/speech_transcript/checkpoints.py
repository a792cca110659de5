"""What both apps read alike from a NeMo checkpoint and its inputs, written once so that the
two cannot drift: the model class names (which app runs which checkpoint), the seconds an
encoder frame lasts, NeMo's padding of inputs under a second, and which inputs are sample
arrays. Pure Python: the apps do the array work with the numbers given here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

TRANSDUCER_CLASS = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
CTC_CLASS = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"
HYBRID_CLASS = "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel"
# The same three families with a character vocabulary (`labels`) instead of a tokenizer:
# NeMo's older classes (e.g. stt_zh_conformer_transducer_large), decoded by `CTCDecoding` /
# `RNNTDecoding` rather than their BPE counterparts.
CHAR_TRANSDUCER_CLASS = "nemo.collections.asr.models.rnnt_models.EncDecRNNTModel"
CHAR_CTC_CLASS = "nemo.collections.asr.models.ctc_models.EncDecCTCModel"
CHAR_HYBRID_CLASS = "nemo.collections.asr.models.hybrid_rnnt_ctc_models.EncDecHybridRNNTCTCModel"
MULTITASK_CLASS = "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel"
# Language-prompt models (Nemotron 3.5 ASR): a transducer or hybrid with a prompt projection.
PROMPT_TRANSDUCER_CLASS = (
    "nemo.collections.asr.models.rnnt_bpe_models_prompt.EncDecRNNTBPEModelWithPrompt"
)
PROMPT_HYBRID_CLASS = (
    "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models_prompt."
    "EncDecHybridRNNTCTCBPEModelWithPrompt"
)
# NeMo's end-of-utterance RNNT model (its vocabulary ends with <EOU> and <EOB>), and its hybrid
# RNNT + CTC sibling (the same markers, emitted by both heads)
EOU_TRANSDUCER_CLASS = "nemo.collections.asr.models.asr_eou_models.EncDecRNNTBPEEOUModel"
EOU_HYBRID_CLASS = "nemo.collections.asr.models.asr_eou_models.EncDecHybridRNNTCTCBPEEOUModel"
# Multitalker ASR (multitalker-parakeet-streaming-0.6b-v1): an RNNT model with speaker kernels
MULTITALKER_CLASS = (
    "nemo.collections.asr.models.multitalker_asr_models.EncDecMultiTalkerRNNTBPEModel"
)
CHAR_CLASSES = (CHAR_TRANSDUCER_CLASS, CHAR_CTC_CLASS, CHAR_HYBRID_CLASS)
CTC_CLASSES = (CTC_CLASS, CHAR_CTC_CLASS)  # a CTC head only, no transducer
PARAKEET_CLASSES = (
    TRANSDUCER_CLASS,
    CTC_CLASS,
    HYBRID_CLASS,
    EOU_TRANSDUCER_CLASS,
    EOU_HYBRID_CLASS,
    PROMPT_TRANSDUCER_CLASS,
    PROMPT_HYBRID_CLASS,
    MULTITALKER_CLASS,
    *CHAR_CLASSES,
)
CANARY_CLASSES = (MULTITASK_CLASS,)
MIN_SECONDS = 1.0  # NeMo's transcribe pads shorter audio to this, half on each side

App = Literal["parakeet", "canary"]


def model_class_problem(name: str, model_class: str, app: App) -> str | None:
    """None if `app` runs checkpoints of `model_class`, else the one-line reason, naming
    the other app's command when the checkpoint is one of its models."""
    if model_class in (PARAKEET_CLASSES if app == "parakeet" else CANARY_CLASSES):
        return None
    short = model_class.rsplit(".", 1)[-1]
    if app == "parakeet" and "MultiTask" in model_class:
        return f"{name} is a Canary model ({short}): use the `canary` command"
    parakeet = model_class in PARAKEET_CLASSES
    if app == "canary" and (
        parakeet or short.startswith(("EncDecRNNT", "EncDecCTC", "EncDecHybrid"))
    ):
        return f"{name} is a Parakeet model: use the `parakeet` command"
    return f"{name}: model class {model_class!r} is not supported; {supported_classes()}"


def supported_classes() -> str:
    """Which NeMo classes run where, in one clause for error messages."""
    parakeet = ", ".join(c.rsplit(".", 1)[-1] for c in PARAKEET_CLASSES)
    canary = ", ".join(c.rsplit(".", 1)[-1] for c in CANARY_CLASSES)
    return f"`parakeet` runs {parakeet}; `canary` runs {canary}"


def language_problem(language: str, languages: Sequence[str]) -> str | None:
    """None if a model that takes `languages` takes `language`, else the one-line reason,
    listing the model's own languages (Canary's prompt languages, a prompt model's locales)."""
    if language in languages:
        return None
    return (
        f"language {language!r} is not supported by this model; supported: {', '.join(languages)}"
    )


def sample_rate(preprocessor: Mapping[str, Any]) -> int:
    """The rate the model takes audio at (NeMo's default 16 kHz)."""
    return int(preprocessor.get("sample_rate", 16000))


def frame_seconds(preprocessor: Mapping[str, Any], subsampling_factor: int) -> float:
    """Seconds per encoder frame: the feature hop (`window_stride` in seconds, else
    `n_window_stride` in samples, else NeMo's 10 ms) times the subsampling factor. Frame
    indices and TDT durations count these frames; this is NeMo's rule for their times."""
    stride = preprocessor.get("window_stride")
    if not stride and "n_window_stride" in preprocessor:
        stride = preprocessor["n_window_stride"] / preprocessor.get("sample_rate", 16000)
    return float(stride if stride is not None else 0.01) * subsampling_factor


def padding_for(samples: int, rate: int) -> tuple[int, int]:
    """Zeros NeMo's transcribe puts (before, after) an input of `samples` samples at `rate`:
    up to `MIN_SECONDS` in all, half in front; (0, 0) for an input that long or longer."""
    missing = int(MIN_SECONDS * rate) - samples
    if missing <= 0:
        return 0, 0
    return missing // 2, missing - missing // 2


def speech_spans(
    segments: Sequence[tuple[float, float]], samples: int, rate: int, frame: int
) -> list[tuple[int, int]]:
    """A VAD's speech segments (seconds) as [first, last) encoder frames of `frame` samples,
    what `--vad` transcribes: rounded inwards, so that no word comes from the non-speech
    around them; one under `MIN_SECONDS` grown to it (whole frames, within the input), and
    spans that then touch joined."""
    total = samples // frame
    minimum = math.ceil(MIN_SECONDS * rate / frame)
    spans: list[tuple[int, int]] = []
    for start, end in segments:
        first = math.ceil(start * rate / frame)
        last = min(total, math.floor(end * rate / frame))
        if last <= first:
            continue
        if last - first < minimum:
            first = max(0, first - (minimum - (last - first) + 1) // 2)
            last = min(total, first + minimum)
            first = max(0, last - minimum)
        if spans and first <= spans[-1][1]:
            first = spans.pop()[0]
        spans.append((first, last))
    return spans


def array_rate(item: object, rate: int | None) -> int | None:
    """The `source_sr` to load `item` with: `rate` for an array of samples (numpy or MLX,
    told by their `shape` and `dtype`), None for a path, bytes or a file, which carry their
    own rate."""
    return rate if hasattr(item, "shape") and hasattr(item, "dtype") else None
