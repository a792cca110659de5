"""A torch-free reader of ARPA n-gram files over token ids, as NeMo reads them.

NeMo's token-level LMs (built with its `train_kenlm.py` / KenLM) write token id `i` as the
character `chr(i + token_offset)` (offset 100 by default), words separated by spaces; `<s>`,
`</s>` and `<unk>` are the special words. Weights and back-offs are log10 in the file and
natural logarithms here, converted in float64 as NeMo does (then rounded to float32 where
they are stored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

DEFAULT_TOKEN_OFFSET = 100  # NeMo's `ngram_lm.constants.DEFAULT_TOKEN_OFFSET`
BOS_ID, EOS_ID, UNK_ID = -1, -2, -3  # the special words' ids (below every token id)
SPECIAL_IDS = {"<s>": BOS_ID, "</s>": EOS_ID, "<unk>": UNK_ID}
_LOG10_E = np.log10(np.e)
# one word: a special word or one character, and the space after it
_WORD = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_IDS) + r"|.)\s?")


@dataclass(frozen=True)
class NGram:
    """One ARPA line: token ids (specials negative), natural-log weight and back-off."""

    symbols: tuple[int, ...]
    weight: float
    backoff: float


def log10_to_ln(value: float) -> float:
    return float(value / _LOG10_E)


def read_arpa(path: str | Path, token_offset: int = DEFAULT_TOKEN_OFFSET) -> dict[int, list[NGram]]:
    """The n-grams of an ARPA file by order, each order in file order; the counts are
    checked against the header."""
    with open(path, encoding="utf-8") as f:
        counts = _read_header(f, path)
        by_order: dict[int, list[NGram]] = {order: [] for order in counts}
        for ngram in _read_ngrams(f, token_offset, path):
            order = len(ngram.symbols)
            if order not in by_order:
                raise ValueError(f"{path}: an n-gram of order {order}, not in the header")
            by_order[order].append(ngram)
    for order, count in counts.items():
        if len(by_order[order]) != count:
            raise ValueError(
                f"{path}: {len(by_order[order])} {order}-grams, the header says {count}"
            )
    return by_order


def _read_header(f: TextIO, path: str | Path) -> dict[int, int]:
    """`\\data\\`, then `ngram N=count` lines up to an empty line."""
    line = f.readline()
    while line and not line.strip():  # blank lines before the header (SRILM writes one)
        line = f.readline()
    if line.strip() != "\\data\\":
        raise ValueError(f"{path}: not an ARPA file (no \\data\\ header)")
    counts: dict[int, int] = {}
    for line in f:
        line = line.strip()
        if not line:
            break
        match = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", line)
        if match is None:
            raise ValueError(f"{path}: unexpected header line {line!r}")
        counts[int(match[1])] = int(match[2])
    if not counts:
        raise ValueError(f"{path}: the header lists no n-grams")
    return counts


def _read_ngrams(f: TextIO, token_offset: int, path: str | Path) -> Iterator[NGram]:
    for line in f:
        line = line.removesuffix("\n")
        if not line:
            continue
        if line.startswith("\\end\\"):
            break
        if line.startswith("\\"):  # a section header: \N-grams:
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise ValueError(f"{path}: not an n-gram line: {line!r}")
        words = _WORD.findall(fields[1])
        yield NGram(
            symbols=tuple(
                SPECIAL_IDS[w] if w in SPECIAL_IDS else ord(w) - token_offset for w in words
            ),
            weight=log10_to_ln(float(fields[0])),
            backoff=log10_to_ln(float(fields[2])) if len(fields) == 3 else 0.0,
        )
