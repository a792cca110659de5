"""The fusion models a decoding config asks for, as NeMo's decoders build them: the n-gram
LM from `ngram_lm_model` with `ngram_lm_alpha`, then the boosting tree from the key phrases
with `boosting_tree_alpha` (that order: the scores are added in it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .boosting import BoostingTree, BoostingTreeConfig
from .fusion import FusionModel
from .ngram import NGramLM


def fusion_models(
    vocab_size: int,
    tokenize: Callable[[str], list[int]] | None = None,
    *,
    phrases: Sequence[str] = (),
    context_score: float = 1.0,
    boost_alpha: float = 0.0,
    lm: str | Path | None = None,
    lm_alpha: float = 0.0,
    depth_scaling: float | None = None,
) -> list[FusionModel]:
    """The LM (if `lm`, an ARPA file) and the tree of `phrases` (through `tokenize`, the ASR
    model's tokenizer) over `vocab_size` tokens, each with its weight; NeMo's other tree
    settings keep their defaults (depth scaling 2, as for CTC and transducers; NeMo's AED
    beam config sets 1: pass `depth_scaling`). ValueError for a malformed LM or phrases the
    tree cannot take."""
    models = []
    if lm is not None:
        models.append(FusionModel(NGramLM.from_arpa(lm, vocab_size), lm_alpha))
    if phrases:
        if tokenize is None:
            raise ValueError("boosting phrases needs the model's tokenizer")
        settings = {} if depth_scaling is None else {"depth_scaling": depth_scaling}
        config = BoostingTreeConfig(
            key_phrases_list=list(phrases), context_score=context_score, **settings
        )
        models.append(
            FusionModel(BoostingTree.from_config(config, tokenize, vocab_size), boost_alpha)
        )
    return models
