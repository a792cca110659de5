"""The language a prompt model (Nemotron 3.5 ASR) is asked to transcribe, checked once before
any audio is read; models without a language prompt take none."""

from __future__ import annotations

from dataclasses import dataclass

from mlx_conformer import DEFAULT_LANGUAGE, LanguagePrompt
from speech_transcript.checkpoints import language_problem

from .errors import ParakeetError


@dataclass(frozen=True)
class Language:
    """A prompt model's target language: its name in the model's `prompt_dictionary`
    (`auto`, `en-US`, `de`, ...) and the prompt index the projection gets."""

    name: str
    index: int


def choose_language(
    model: str, prompt: LanguagePrompt | None, language: str | None
) -> Language | None:
    """`language` (None: NeMo's default `auto`) as the prompt of `model`, or None where the
    model has no language prompt; ParakeetError naming the model's languages otherwise."""
    if prompt is None:
        if language is None:
            return None
        raise ParakeetError(
            f"{model} takes no target language (only language-prompt models such as "
            "nvidia/nemotron-3.5-asr-streaming-0.6b do); leave out --language"
        )
    name = DEFAULT_LANGUAGE if language is None else language
    if problem := language_problem(name, prompt.config.names):
        raise ParakeetError(problem)
    return Language(name, prompt.config.index(name))
