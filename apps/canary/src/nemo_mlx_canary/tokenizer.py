"""Canary's tokenizer: NeMo's aggregate of SentencePiece models (or one unified model).

An aggregate tokenizer concatenates the vocabularies of its sub-tokenizers in the order
the config lists them (`spl_tokens` first in Canary), so sub-tokenizer k's id i is
`offset[k] + i`. Special tokens (`<|en|>`, `<|pnc|>`, ...) are whole pieces of the
`spl_tokens` model; text is decoded piece by piece with `▁` turned into spaces, as
NeMo's `AggregateTokenizer.ids_to_text` does.
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

    def __init__(self, parts: Sequence[tuple[str, spm.SentencePieceProcessor]]) -> None:
        self._parts: list[_Part] = []
        self._pieces: list[str] = []
        offset = 0
        for name, processor in parts:
            self._parts.append(_Part(name, processor, offset))
            size = processor.get_piece_size()
            self._pieces += [processor.id_to_piece(i) for i in range(size)]
            offset += size
        self.vocab_size = offset
        specials = self._part(SPECIAL) if len(self._parts) > 1 else self._parts[0]
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
        return cls([(SPECIAL, processor(cfg, "tokenizer"))])

    def _part(self, name: str) -> _Part:
        for part in self._parts:
            if part.name == name:
                return part
        raise CanaryError(f"the tokenizer has no {name!r} sub-tokenizer")

    @property
    def languages(self) -> list[str]:
        """Languages the prompt may name: the aggregate's sub-tokenizers (with a `<|xx|>`
        token), or for a unified tokenizer its `<|xx|>` tokens that are not controls."""
        if len(self._parts) > 1:
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

    def encode(self, text: str, language: str) -> list[int]:
        """Text in `language`'s sub-tokenizer (the unified model when there is only one)."""
        part = self._parts[0] if len(self._parts) == 1 else self._part(language)
        return [part.offset + i for i in part.processor.encode(text)]

    def piece(self, token_id: int) -> str:
        return self._pieces[token_id]

    def is_special(self, token_id: int) -> bool:
        return bool(_SPECIAL_PIECE.fullmatch(self._pieces[token_id])) or token_id == self.pad_id

    def decode(self, ids: Sequence[int]) -> str:
        """NeMo's `ids_to_text`: pieces joined, `▁` as spaces."""
        return "".join(self._pieces[i] for i in ids).replace("▁", " ")
