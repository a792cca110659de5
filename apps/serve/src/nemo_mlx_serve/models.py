"""The served models: `--model [NAME=]REF` specs, loaded once, each behind one `Recognizer`
that says what the model can do and runs a batch of same-option requests on it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

import nemo_mlx_canary as canary
import nemo_mlx_parakeet as parakeet
from nemo_mlx_convert import ConversionError, resolve_model
from speech_transcript import Transcript
from speech_transcript.biasing import Biasing
from speech_transcript.checkpoints import (
    CANARY_CLASSES,
    PARAKEET_CLASSES,
    language_problem,
    supported_classes,
)

from .errors import APIError

if TYPE_CHECKING:
    from mlx_diarization import Diarizer

Kind = Literal["parakeet", "canary"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class ModelLoadError(Exception):
    """A `--model` that cannot be served; `str(err)` is one line for stderr."""


@dataclass(frozen=True)
class ModelSpec:
    """One `--model` argument: `REF` (served as REF) or `NAME=REF`."""

    name: str
    ref: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        name, sep, ref = text.partition("=")
        if not sep:
            name, ref = text, text
        if not ref:
            raise ModelLoadError(f"--model {text!r}: no model reference after '='")
        if not _NAME.match(name):
            raise ModelLoadError(
                f"--model {text!r}: a served name is 1-128 letters, digits and . _ : / -"
            )
        return cls(name, ref)


@dataclass(frozen=True)
class Options:
    """What a request asks of the model. Requests with equal options share a batch."""

    task: Literal["transcribe", "translate"] = "transcribe"
    # the spoken language (Canary's source language; a prompt model's target language)
    language: str | None = None
    target_language: str | None = None  # Canary: the language to write
    timestamps: bool = True
    # phrases boosted, or spotted (`word_spotter`): a request's own, batched only with equals
    biasing: Biasing | None = None
    diarize: bool = False  # speakers on words and segments (the server's `--diarize` model)


@dataclass
class Recognizer:
    """A loaded model under its served name; `diarizer`, the server's `--diarize` model
    (shared by all, run on the compute thread as the models are), or None."""

    name: str
    ref: str
    kind: Kind
    model: parakeet.Parakeet | canary.Canary
    created: int = 0
    languages: list[str] = field(default_factory=list)
    diarizer: Diarizer | None = None

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def has_timestamps(self) -> bool:
        return self.kind == "parakeet" or self.model.has_timestamps

    @property
    def can_translate(self) -> bool:
        return self.kind == "canary"

    def check(self, options: Options) -> Options:
        """The options this model will run (400 for what it cannot do)."""
        biasing = self._biasing(options.biasing)
        if self.kind == "parakeet":
            if options.task == "translate":
                raise APIError(
                    400, f"model {self.name!r} transcribes only; translation needs a Canary model",
                    param="model",
                )  # fmt: skip
            if options.target_language not in (None, options.language):
                raise APIError(
                    400, f"model {self.name!r} cannot translate into {options.target_language!r}",
                    param="target_language",
                )  # fmt: skip
            if not self.languages:  # it writes the language it hears: no input to it
                return Options(timestamps=True, biasing=biasing, diarize=options.diarize)
            # a language-prompt model (Nemotron 3.5 ASR): NeMo's `target_lang`, default auto
            language = options.language or parakeet.DEFAULT_LANGUAGE
            if problem := language_problem(language, self.languages):
                raise APIError(400, f"model {self.name!r}: {problem}", param="language")
            return Options(language=language, timestamps=True, biasing=biasing,
                           diarize=options.diarize)  # fmt: skip
        source = options.language or "en"
        target = "en" if options.task == "translate" else (options.target_language or source)
        for param, code in (("language", source), ("target_language", target)):
            if code not in self.languages:
                raise APIError(
                    400,
                    f"model {self.name!r} does not take language {code!r}; "
                    f"it takes {', '.join(self.languages)}",
                    param=param,
                )
        timestamps = options.timestamps and self.has_timestamps
        return Options(options.task, source, target, timestamps, biasing, options.diarize)

    def _biasing(self, biasing: Biasing | None) -> Biasing | None:
        """The request's phrases, if this model can take them as asked: the word spotter
        reads a CTC head; Canary boosts in its checkpoint's decoding (the CLI's default),
        which must be NeMo's beam search, the only one that fuses."""
        if not biasing:
            return None
        if biasing.word_spotter:
            if self.kind == "canary" or self.model.ctc is None:
                raise APIError(400, f"model {self.name!r} has no CTC head: the word spotter "
                               "needs a CTC or hybrid Parakeet model", param="word_spotter")  # fmt: skip
        elif self.kind == "canary" and self.model.default_decoding != "beam":
            raise APIError(400, f"model {self.name!r} decodes greedily (its checkpoint's "
                           "decoding) and NeMo boosts phrases only in beam search",
                           param="boost")  # fmt: skip
        return biasing

    def run(
        self, signals: Sequence[np.ndarray], options: Options, batch_size: int
    ) -> list[Transcript]:
        """Transcripts of `signals` (mono, at `sample_rate`), decoded together; with speakers
        when `options.diarize` (`check` has made sure that there is a diarizer). The app's
        error for phrases the model cannot take is a 400 naming `boost`."""
        diarizer = self.diarizer if options.diarize else None
        try:
            if self.kind == "parakeet":
                return self.model.transcribe(
                    list(signals), batch_size=batch_size, language=options.language,
                    biasing=options.biasing, diarize=diarizer,
                )  # fmt: skip
            # boosted: the checkpoint's decoding (beam, `check` made sure) with the tree fused
            return list(
                self.model.transcribe(
                    list(signals), source_lang=options.language or "en",
                    target_lang=options.target_language, timestamps=options.timestamps,
                    batch_size=batch_size, diarize=diarizer, biasing=options.biasing,
                )
            )  # fmt: skip
        except (parakeet.ParakeetError, canary.CanaryError) as err:
            if options.biasing is None:
                raise
            raise APIError(400, f"model {self.name!r}: {err}", param="boost") from None


def load_recognizer(
    spec: ModelSpec, cache_dir: str | Path | None = None, dtype: str | None = None
) -> Recognizer:
    """Load one model, picking the app by the checkpoint's NeMo class. Call it on the thread
    that will run the model (`compute.Compute`): MLX's arrays belong to their thread."""
    import time

    kind = _kind(spec.ref, cache_dir)
    try:
        if kind == "parakeet":
            model = parakeet.load(spec.ref, cache_dir=cache_dir, dtype=dtype, verbose=False)
            languages: list[str] = model.languages  # a prompt model's; else none
        else:
            model = canary.load(spec.ref, cache_dir=cache_dir, dtype=dtype, verbose=False)
            languages = list(model.languages)
    except (parakeet.ParakeetError, canary.CanaryError, ConversionError) as err:
        raise ModelLoadError(f"--model {spec.ref}: {err}") from None
    return Recognizer(spec.name, spec.ref, kind, model, int(time.time()), languages)


def _kind(ref: str, cache_dir: str | Path | None) -> Kind:
    if ref == "demo":
        return "parakeet"
    try:
        model_dir = resolve_model(ref, cache_dir=cache_dir)
    except ConversionError as err:
        raise ModelLoadError(f"--model {ref}: {err}") from None
    if model_dir.model_class in PARAKEET_CLASSES:
        return "parakeet"
    if model_dir.model_class in CANARY_CLASSES:
        return "canary"
    raise ModelLoadError(
        f"--model {ref}: model class {model_dir.model_class!r} is not supported; "
        f"{supported_classes()}"
    )


def load_diarizer(
    reference: str | bool | None, cache_dir: str | Path | None = None
) -> Diarizer | None:
    """The server's `--diarize` model (parakeet's loader: a Sortformer reference, True for
    the default, None for none); ModelLoadError (one line) for what is not one. Call it on
    the compute thread, as `load_recognizer`."""
    try:
        return parakeet.load_diarizer(reference, cache_dir=cache_dir, verbose=False)
    except parakeet.ParakeetError as err:
        raise ModelLoadError(str(err)) from None
