"""Turning model token ids into text the way NeMo's decoding does: through the SentencePiece
tokenizer (BPE classes), or by joining the labels of a character vocabulary (`CharTokenizer`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from nemo_mlx_convert import ModelDirectory
from speech_transcript.checkpoints import CHAR_CLASSES

from .errors import ParakeetError

_SPECIAL = [re.compile(p) for p in (r"^\[.*\]$", r"^<.*>$", r"^##", r"^▁", r"^\s*$")]


def punctuation_in(vocabulary: Sequence[str]) -> set[str]:
    """Punctuation characters of the vocabulary's ordinary pieces (NeMo's rule)."""
    return {
        char
        for piece in vocabulary
        if not any(p.match(piece) for p in _SPECIAL)
        for char in piece
        if unicodedata.category(char).startswith("P")
    }


class Tokenizer:
    """Decoding only: ids -> pieces and text, and the vocabulary's punctuation marks."""

    def __init__(
        self,
        pieces: list[str],
        processor: spm.SentencePieceProcessor | None = None,
        lang_tags: str | None = None,
    ) -> None:
        self.pieces = pieces
        # NeMo's `decoding.strip_lang_tags` (prompt models write `<en-US>` tags): the
        # tags' pattern, removed from the text, or None to keep them
        self._lang_tags = re.compile(lang_tags) if lang_tags is not None else None
        self._processor = processor
        self._token_texts: dict[int, str] = {}
        self._word_texts: dict[tuple[str, ...], str] = {}
        self.punctuation = punctuation_in(pieces)
        self._space_before_punctuation = (
            re.compile(r"(\s)(" + "|".join(re.escape(p) for p in sorted(self.punctuation)) + ")")
            if self.punctuation
            else None
        )

    @classmethod
    def from_model_directory(cls, model_dir: ModelDirectory) -> Tokenizer:
        cfg: Mapping[str, Any] = model_dir.nemo_config
        if model_dir.model_class in CHAR_CLASSES:
            return CharTokenizer.from_config(cfg, model_dir.path)
        tokenizer_cfg = cfg.get("tokenizer") or {}
        kind = tokenizer_cfg.get("type", "bpe")
        if kind == "wpe":
            # NeMo decodes WordPiece through Hugging Face's BERT tokenizer (`##` continues a
            # word), which the SentencePiece rules below would get wrong: refused, not guessed.
            raise ParakeetError(
                f"{model_dir.path}: WordPiece (wpe) tokenizers are not supported yet; "
                "SentencePiece (bpe) checkpoints are"
            )
        if kind != "bpe":
            raise ParakeetError(
                f"tokenizer type {kind!r} is not supported by parakeet (aggregate tokenizers: use canary)"
            )
        lang_tags = _lang_tag_pattern(cfg.get("decoding") or {})
        reference = tokenizer_cfg.get("model_path")
        path = model_dir.artifact(reference) if isinstance(reference, str) else None
        if path is not None and Path(path).is_file():
            processor = spm.SentencePieceProcessor(model_file=str(path))
            pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
            return cls(pieces, processor, lang_tags)
        # The existing MLX ports ship no tokenizer file; NeMo's config lists the pieces.
        vocabulary = _vocabulary(cfg)
        if not vocabulary:
            raise ParakeetError(
                f"{model_dir.path}: no tokenizer model and no vocabulary in the config"
            )
        return cls(list(vocabulary), lang_tags=lang_tags)

    def __len__(self) -> int:
        return len(self.pieces)

    def piece(self, token: int) -> str:
        return self.pieces[token]

    def token_text(self, token: int) -> str:
        """`decode([token])`, remembered (a transcript asks for it once per token)."""
        text = self._token_texts.get(token)
        if text is None:
            text = self._token_texts[token] = self.decode([token])
        return text

    def decode_pieces(self, pieces: Sequence[str]) -> str:
        if self._processor is not None:
            key = tuple(pieces)
            text = self._word_texts.get(key)
            if text is None:
                text = self._word_texts[key] = self._processor.decode_pieces(list(pieces))
                if len(self._word_texts) > 100_000:  # words seen: bounded
                    self._word_texts.clear()
            return text
        return "".join(pieces).replace("▁", " ").strip()

    def encode(self, text: str) -> list[int]:
        """NeMo's `text_to_ids` (what its boosting tree encodes key phrases with);
        ParakeetError without a SentencePiece model (a vocabulary alone cannot encode)."""
        if self._processor is None:
            raise ParakeetError("this model has no SentencePiece tokenizer file to encode "
                                "boost phrases with")  # fmt: skip
        return list(self._processor.encode_as_ids(text))

    def decode(self, ids: Sequence[int]) -> str:
        """NeMo's `ids_to_text`."""
        if self._processor is not None:
            return self._processor.decode_ids([int(i) for i in ids])
        return self.decode_pieces([self.pieces[i] for i in ids])

    def text(self, ids: Sequence[int]) -> str:
        """The transcript text as NeMo's decoding writes it: one space before punctuation
        removed, and language tags where the config strips them."""
        text = self.decode(ids)
        if self._space_before_punctuation is not None:
            text = self._space_before_punctuation.sub(r"\2", text)
        if self._lang_tags is not None:
            text = self._lang_tags.sub("", text).strip()
        return text


class CharTokenizer(Tokenizer):
    """A character vocabulary (NeMo's `labels`), decoded as `CTCDecoding` / `RNNTDecoding` do:
    a token's text is its label, text is the labels joined as they are (no word-start marker,
    nothing stripped: a leading space stays), and a word starts at the space label, which
    `timestamps.word_spans` gets from pieces equal to their texts."""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: object) -> CharTokenizer:
        labels = _vocabulary(cfg) or cfg.get("labels")
        if not labels:
            raise ParakeetError(f"{where}: a character model with no `labels` in its config")
        return cls([str(label) for label in labels])

    def decode_pieces(self, pieces: Sequence[str]) -> str:
        return "".join(pieces)

    def encode(self, text: str) -> list[int]:
        """NeMo builds no boosting tree for a character model (it has no tokenizer)."""
        raise ParakeetError("phrase boosting needs a model with a tokenizer; character "
                            "models have none (as in NeMo)")  # fmt: skip


def _vocabulary(cfg: Mapping[str, Any]) -> list[str] | None:
    """The vocabulary NeMo's decoding reads: the joint's (transducers, hybrids), else the CTC
    decoder's."""
    return (cfg.get("joint") or {}).get("vocabulary") or (cfg.get("decoder") or {}).get(
        "vocabulary"
    )


def _lang_tag_pattern(decoding: Mapping[str, Any]) -> str | None:
    """The language tags NeMo's RNNT decoding strips from the text (`strip_lang_tags`, with
    `lang_tag_pattern` or its default `<xx-XX>`), or None where it keeps them."""
    if not decoding.get("strip_lang_tags", False):
        return None
    return decoding.get("lang_tag_pattern") or r"\s*<[a-z]{2}-[A-Z]{2}>"
