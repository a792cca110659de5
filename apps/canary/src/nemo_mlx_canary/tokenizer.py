"""Canary's tokenizer: NeMo's aggregate of SentencePiece models, or one unified model.

An aggregate tokenizer (`CanaryTokenizer`: canary-1b, canary-1b-flash, canary-180m-flash)
concatenates the vocabularies of its sub-tokenizers in the order the config lists them
(`spl_tokens` first in Canary), so sub-tokenizer k's id i is `offset[k] + i`. Special tokens
(`<|en|>`, `<|pnc|>`, ...) are whole pieces of the `spl_tokens` model; text is decoded piece
by piece with `▁` turned into spaces, as NeMo's `AggregateTokenizer.ids_to_text` does.

A unified tokenizer (`CanaryBPETokenizer`: canary-1b-v2) is one SentencePiece model with the
special tokens inside. NeMo decodes it with SentencePiece's own `decode` (control pieces
dropped, user-defined ones kept literally, `<unk>` as ` ⁇ `, no leading space) and builds its
prompt by encoding the prompt's string with it, dummy prefix included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

from nemo_mlx_convert import ModelDirectory

from .errors import CanaryError

SPECIAL = "spl_tokens"
# Languages a checkpoint supports (its model card) where its unified vocabulary holds many more
# language tokens (NeMo does not restrict them; the model was not trained on the others). Keyed
# by the checkpoint's name: the Hugging Face repo's, or the .nemo file's stem.
CARD_LANGUAGES = {
    "canary-1b-v2": ("bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "hr", "hu",
                     "it", "lt", "lv", "mt", "nl", "pl", "pt", "ro", "ru", "sk", "sl", "sv", "uk"),
}  # fmt: skip
BOS, EOS, PAD = "<|startoftranscript|>", "<|endoftext|>", "<pad>"
_SPECIAL_PIECE = re.compile(r"<\|[^|]+\|>")
_CONTROLS = {"pnc", "nopnc", "itn", "noitn", "timestamp", "notimestamp", "diarize", "nodiarize"}


@dataclass(frozen=True)
class _Part:
    name: str
    processor: spm.SentencePieceProcessor
    offset: int


class CanaryTokenizer:
    """Ids <-> text for a Canary checkpoint; `special(token)` gives a special token's id."""

    def __init__(
        self,
        parts: Sequence[tuple[str, spm.SentencePieceProcessor]],
        languages: Sequence[str] | None = None,
    ) -> None:
        self._parts: list[_Part] = []
        self._pieces: list[str] = []
        offset = 0
        for name, processor in parts:
            self._parts.append(_Part(name, processor, offset))
            size = processor.get_piece_size()
            self._pieces += [processor.id_to_piece(i) for i in range(size)]
            offset += size
        self.vocab_size = offset
        self.unified = len(self._parts) == 1
        self._languages = sorted(languages) if languages else None
        specials = self._parts[0] if self.unified else self._part(SPECIAL)
        self._special: dict[str, int] = {}
        for i in range(specials.processor.get_piece_size()):
            piece = specials.processor.id_to_piece(i)
            if _SPECIAL_PIECE.fullmatch(piece) or piece == PAD:
                self._special.setdefault(piece, specials.offset + i)
        for token in (BOS, EOS, PAD):
            if token not in self._special:
                raise CanaryError(f"the tokenizer has no {token} token: not a Canary tokenizer")
        self.bos_id, self.eos_id, self.pad_id = (self._special[t] for t in (BOS, EOS, PAD))

    @classmethod
    def from_model_directory(cls, model_dir: ModelDirectory) -> CanaryTokenizer:
        cfg: Mapping[str, Any] = model_dir.nemo_config.get("tokenizer") or {}

        def processor(sub: Mapping[str, Any], label: str) -> spm.SentencePieceProcessor:
            reference = sub.get("model_path")
            path = model_dir.artifact(reference) if reference else None
            if path is None or not Path(path).is_file():
                raise CanaryError(f"the model directory lacks the {label} SentencePiece model")
            return spm.SentencePieceProcessor(model_file=str(path))

        if cfg.get("type") == "agg" or "langs" in cfg:
            langs = cfg.get("langs") or {}
            if SPECIAL not in langs:
                raise CanaryError("the aggregate tokenizer has no spl_tokens sub-tokenizer")
            return cls([(name, processor(sub, name)) for name, sub in langs.items()])
        return cls([(SPECIAL, processor(cfg, "tokenizer"))], CARD_LANGUAGES.get(_name(model_dir)))

    def _part(self, name: str) -> _Part:
        for part in self._parts:
            if part.name == name:
                return part
        raise CanaryError(f"the tokenizer has no {name!r} sub-tokenizer")

    @property
    def languages(self) -> list[str]:
        """Languages the prompt may name: the aggregate's sub-tokenizers (with a `<|xx|>`
        token); for a unified tokenizer its model card's (`CARD_LANGUAGES`), or else its
        `<|xx|>` tokens that are not controls."""
        if self._languages:
            return list(self._languages)
        if not self.unified:
            names = [p.name for p in self._parts if p.name != SPECIAL]
            return sorted(n for n in names if f"<|{n}|>" in self._special)
        names = (t[2:-2] for t in self._special)
        return sorted(
            n for n in names if re.fullmatch(r"[a-z]{2,3}(-[A-Za-z]+)?", n) and n not in _CONTROLS
        )

    def special(self, token: str) -> int:
        try:
            return self._special[token]
        except KeyError:
            raise CanaryError(f"the tokenizer has no {token} token") from None

    def has_special(self, token: str) -> bool:
        return token in self._special

    def prompt(self, tokens: Sequence[str]) -> list[int]:
        """The ids of a prompt made of special tokens, as NeMo's prompt formatter makes them.

        Aggregate: each token's id (`CanaryTokenizer._tokenize_special_prompt`). Unified: the
        tokens joined into one string and encoded by SentencePiece (NeMo's
        `SentencePieceTokenizer.text_to_ids`), which puts its dummy-prefix `▁` piece in front.
        """
        ids = [self.special(t) for t in tokens]
        if not self.unified:
            return ids
        return list(self._parts[0].processor.encode("".join(tokens)))

    def encode(self, text: str, language: str) -> list[int]:
        """Text in `language`'s sub-tokenizer (the unified model when there is only one)."""
        part = self._parts[0] if self.unified else self._part(language)
        return [part.offset + i for i in part.processor.encode(text)]

    def piece(self, token_id: int) -> str:
        return self._pieces[token_id]

    def decode(self, ids: Sequence[int]) -> str:
        """NeMo's `ids_to_text`: the aggregate's pieces joined, `▁` as spaces; a unified
        model's SentencePiece `decode`."""
        if self.unified:
            return self._parts[0].processor.decode([int(i) for i in ids])
        return "".join(self._pieces[i] for i in ids).replace("▁", " ")


def _name(model_dir: ModelDirectory) -> str | None:
    """The checkpoint's name: its Hugging Face repo's, or its .nemo file's stem."""
    source = model_dir.config.source if model_dir.config is not None else None
    if source is None:
        return None
    if source.hf_repo:
        return source.hf_repo.rsplit("/", 1)[-1]
    return Path(source.file_name).stem
