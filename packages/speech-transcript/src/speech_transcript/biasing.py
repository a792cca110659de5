"""Phrase boosting and n-gram LM fusion as the apps take them: `Biasing`, checked once at the
edge (the command line, the Python API, a server request), then handed to the decoders
(the models are built from it in `mlx_asr_fusion.fusion_models`, with the ASR model's
tokenizer). The names are NeMo's decoding options: `context_score`, `boosting_tree_alpha`,
`ngram_lm_model`, `ngram_lm_alpha`."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .options import non_negative_float, positive_float

# NeMo's `boosting_tree_alpha` defaults to 0 (no boosting) and its docs say to tune it; 1.0 is
# the weight of its per-request boosting (`BiasingRequestItemConfig.boosting_model_alpha`).
DEFAULT_BOOST_ALPHA = 1.0
# NeMo's `BoostingTreeModelConfig.context_score` (and the value its docs recommend).
DEFAULT_BOOST_SCORE = 1.0
# The word spotter's per-token bonus in NeMo's recipe script (its `context_score` default).
DEFAULT_SPOTTER_SCORE = 3.0


class BiasingError(ValueError):
    """Phrases, files or weights that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Biasing:
    """Key phrases to boost and an ARPA LM to fuse, with their weights.

    `phrases` are boosted as NeMo's GPU phrase-boosting tree does (`boost_score` is its
    `context_score`, `boost_alpha` its `boosting_tree_alpha`); `lm` is a token-level ARPA
    file (NeMo's `ngram_lm_model`) weighted `lm_alpha` (`ngram_lm_alpha`).

    With `word_spotter`, the phrases are not boosted in the search but spotted in the CTC
    log-probs afterwards and merged into the greedy result (NeMo's CTC-based word spotter);
    `boost_score` is then the spotter's per-token bonus (default DEFAULT_SPOTTER_SCORE,
    NeMo's recipe's) and an LM is refused (NeMo's recipe runs it without fusion)."""

    phrases: tuple[str, ...] = ()
    boost_score: float | None = None  # None: the default of the mode
    boost_alpha: float = DEFAULT_BOOST_ALPHA
    lm: Path | None = None
    lm_alpha: float | None = None
    word_spotter: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "phrases", tuple(self.phrases))
        for phrase in self.phrases:
            if not isinstance(phrase, str) or not phrase.strip():
                raise BiasingError(f"boost phrases must be non-empty text, got {phrase!r}")
        if self.boost_score is None:
            default = DEFAULT_SPOTTER_SCORE if self.word_spotter else DEFAULT_BOOST_SCORE
            object.__setattr__(self, "boost_score", default)
        if self.word_spotter and not self.phrases:
            raise BiasingError("the word spotter needs phrases to spot")
        if self.word_spotter and self.lm is not None:
            raise BiasingError("the word spotter runs on plain greedy decoding, as NeMo's "
                               "recipe: leave out the LM")  # fmt: skip
        _check_weight("boost score", self.boost_score, positive=True)
        _check_weight("boost alpha", self.boost_alpha)
        if self.lm is not None:
            object.__setattr__(self, "lm", Path(self.lm))
            if self.lm_alpha is None:
                raise BiasingError("an LM needs its weight (lm_alpha, NeMo's ngram_lm_alpha)")
            if not self.lm.is_file():
                raise BiasingError(f"LM file {self.lm} does not exist")
        if self.lm_alpha is not None:
            if self.lm is None:
                raise BiasingError("lm_alpha is the weight of an LM: give the LM too")
            _check_weight("lm alpha", self.lm_alpha)

    def __bool__(self) -> bool:
        return bool(self.phrases) or self.lm is not None


def with_boost(biasing: Biasing | None, boost: Sequence[str]) -> Biasing | None:
    """The apps' `boost=[...]` short form: `biasing`, or the phrases of `boost` with the
    default weights; BiasingError for both, or one string instead of a list."""
    if not boost:
        return biasing
    if biasing is not None:
        raise BiasingError("give boost phrases as boost=[...] or in biasing, not both")
    if isinstance(boost, str):
        raise BiasingError("boost takes a list of phrases, not one string")
    return Biasing(tuple(boost))


def _check_weight(name: str, value: float, positive: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise BiasingError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise BiasingError(f"{name} must be {'above' if positive else 'at least'} 0, got {value:g}")


def read_phrases(path: str | Path) -> list[str]:
    """The phrases of a file, one per line, stripped, blank lines skipped (NeMo strips each
    line of its `key_phrases_file`); BiasingError for a missing or phrase-less file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BiasingError(f"cannot read phrase file {path}: {err.strerror or err}") from None
    phrases = [line.strip() for line in lines if line.strip()]
    if not phrases:
        raise BiasingError(f"phrase file {path} has no phrases")
    return phrases


def gather_phrases(phrases: Iterable[str] = (), files: Iterable[str | Path] = ()) -> list[str]:
    """The phrases given one by one, then those of each file, in order."""
    return [*phrases, *(p for path in files for p in read_phrases(path))]


def add_biasing_arguments(parser: argparse.ArgumentParser) -> None:
    """The `biasing` group: --boost-phrase, --boost-file, --boost-score, --boost-alpha,
    --lm, --lm-alpha (values checked while parsing: one line naming the option)."""
    group = parser.add_argument_group(
        "biasing", "NeMo's phrase boosting and n-gram LM shallow fusion"
    )
    group.add_argument("--boost-phrase", action="append", default=[], metavar="PHRASE",
                       help="boost this word or phrase (repeatable), e.g. \"Anna Lopez\"; "
                            "written as the model writes it (case, punctuation)")  # fmt: skip
    group.add_argument("--boost-file", action="append", default=[], type=Path, metavar="FILE",
                       help="boost the phrases of FILE, one per line (repeatable)")  # fmt: skip
    group.add_argument("--boost-score", type=positive_float, metavar="S",
                       help="bonus per token of a phrase, NeMo's context_score "
                            f"(default {DEFAULT_BOOST_SCORE:g}, NeMo's)")  # fmt: skip
    group.add_argument("--boost-alpha", type=non_negative_float, metavar="A",
                       help="weight of the boosting, NeMo's boosting_tree_alpha (default "
                            f"{DEFAULT_BOOST_ALPHA:g}: NeMo's docs say to tune it; its per-request "
                            "boosting weighs 1.0; NeMo's decoding default 0 turns boosting off)")  # fmt: skip
    group.add_argument("--lm", type=Path, metavar="ARPA",
                       help="fuse this token-level ARPA n-gram LM (NeMo's ngram_lm_model, "
                            "tokens written as chr(id + 100)); needs --lm-alpha")  # fmt: skip
    group.add_argument("--lm-alpha", type=non_negative_float, metavar="A",
                       help="weight of the LM, NeMo's ngram_lm_alpha")  # fmt: skip


def biasing_from_args(args: argparse.Namespace) -> Biasing:
    """The `Biasing` the options ask for (empty without phrases and LM); BiasingError for
    options that do not go together, a missing or empty phrase file, a missing LM file.
    An app with a `--word-spotter` flag (`args.word_spotter`) spots the phrases instead."""
    phrases = gather_phrases(args.boost_phrase, args.boost_file)
    spotter = getattr(args, "word_spotter", False)
    if spotter and (args.boost_alpha is not None or args.lm is not None):
        raise BiasingError("--word-spotter takes phrases and --boost-score only "
                           "(no --boost-alpha, no --lm)")  # fmt: skip
    if spotter and not phrases:
        raise BiasingError("--word-spotter needs --boost-phrase or --boost-file")
    if not phrases and (args.boost_score is not None or args.boost_alpha is not None):
        raise BiasingError("--boost-score and --boost-alpha need --boost-phrase or --boost-file")
    if args.lm is None and args.lm_alpha is not None:
        raise BiasingError("--lm-alpha needs --lm")
    if args.lm is not None and args.lm_alpha is None:
        raise BiasingError("--lm needs --lm-alpha (NeMo's ngram_lm_alpha)")
    settings = {"boost_score": args.boost_score, "boost_alpha": args.boost_alpha}
    return Biasing(
        tuple(phrases),
        lm=args.lm,
        lm_alpha=args.lm_alpha,
        word_spotter=spotter,
        **{k: v for k, v in settings.items() if v is not None},
    )
