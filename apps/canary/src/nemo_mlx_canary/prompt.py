"""The decoder prompts of NeMo's `canary` and `canary2` prompt formats, as token ids.

canary:  <|startoftranscript|> <|src|> <|transcribe|> or <|translate|> <|tgt|> <|pnc|> or <|nopnc|>
canary2: <|startofcontext|> <|startoftranscript|> <|emo:undefined|> <|src|> <|tgt|>
         <|pnc|>/<|nopnc|> <|itn|>/<|noitn|> <|timestamp|>/<|notimestamp|> <|diarize|>/<|nodiarize|>
(canary2 has no task token: translation is a target language other than the source.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from speech_transcript.checkpoints import language_problem

from .errors import CanaryError
from .tokenizer import BOS, CanaryTokenizer

FORMATS = ("canary", "canary2")
Task = Literal["asr", "ast"]


@dataclass(frozen=True)
class PromptOptions:
    source_lang: str = "en"
    target_lang: str | None = None  # default: the source language
    task: Task | None = None  # default: asr when target == source, else ast
    pnc: bool = True
    itn: bool = False
    timestamps: bool = False
    diarize: bool = False

    def resolved(self) -> tuple[str, str, Task]:
        target = self.target_lang or self.source_lang
        task = self.task or ("asr" if target == self.source_lang else "ast")
        if task == "asr" and target != self.source_lang:
            raise CanaryError(
                f"transcription (asr) writes the spoken language: target {target!r} is not "
                f"the source {self.source_lang!r}; use task ast to translate"
            )
        return self.source_lang, target, task


ALIGNER = "timestamps_asr_model"  # canary-1b-v2's auxiliary CTC model (nemo-mlx-convert names it)


def timestamps_unsupported(
    tokenizer: CanaryTokenizer, prompt_format: str, auxiliary_models: Sequence[str] = ()
) -> str | None:
    """Why a model cannot write timestamps, or None if it can (a `<|timestamp|>` slot in
    the canary2 prompt, and frame tokens `<|0|>`, `<|1|>`, ... to write them with). A model
    with NeMo's CTC aligner (canary-1b-v2) gets its timestamps from it, not from its decoder:
    NeMo then always prompts `<|notimestamp|>`, and this app does not run the aligner."""
    if ALIGNER in auxiliary_models:
        return (
            f"NeMo makes its timestamps with its separate CTC aligner model ({ALIGNER}), "
            "which this app does not run"
        )
    if prompt_format != "canary2":
        return f"its prompt format ({prompt_format}) has no timestamp slot"
    if not tokenizer.has_special("<|timestamp|>") or not tokenizer.has_special("<|0|>"):
        return "its tokenizer has no frame tokens (<|0|>, <|1|>, ...)"
    return None


def build_prompt(
    tokenizer: CanaryTokenizer,
    prompt_format: str,
    options: PromptOptions,
    auxiliary_models: Sequence[str] = (),
) -> list[int]:
    source, target, task = options.resolved()
    why = timestamps_unsupported(tokenizer, prompt_format, auxiliary_models)
    if options.timestamps and why:
        raise CanaryError(f"this model cannot give timestamps: {why}")
    languages = tokenizer.languages
    for lang in (source, target):
        if problem := language_problem(lang, languages):
            raise CanaryError(problem)
    yes_no = {True: "<|{}|>", False: "<|no{}|>"}
    if prompt_format == "canary":
        if options.itn or options.diarize:
            raise CanaryError("this model's prompt format (canary) has no itn or diarize")
        tokens = [
            BOS,
            f"<|{source}|>",
            "<|transcribe|>" if task == "asr" else "<|translate|>",
            f"<|{target}|>",
            "<|pnc|>" if options.pnc else "<|nopnc|>",
        ]
    elif prompt_format == "canary2":
        tokens = [
            "<|startofcontext|>",
            BOS,
            "<|emo:undefined|>",
            f"<|{source}|>",
            f"<|{target}|>",
            yes_no[options.pnc].format("pnc"),
            yes_no[options.itn].format("itn"),
            yes_no[options.timestamps].format("timestamp"),
            yes_no[options.diarize].format("diarize"),
        ]
    else:
        raise CanaryError(
            f"prompt format {prompt_format!r} is not supported; supported: {', '.join(FORMATS)}"
        )
    return tokenizer.prompt(tokens)
