"""Phrase boosting and LM fusion for the parakeet app: the options (`speech_transcript.biasing`)
turned into the decoders' fusion models (`mlx_asr_fusion.fusion_models`, NeMo's order: the
LM, then the tree), with the model's tokenizer encoding the phrases as NeMo's tree builder
does."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlx_asr_fusion import FusionModel, fusion_models
from speech_transcript.biasing import Biasing, BiasingError

from .errors import ParakeetError


def fusion_for(
    biasing: Biasing, vocab_size: int, encode: Callable[[str], list[int]]
) -> list[FusionModel]:
    """The fusion models of `biasing` over `vocab_size` tokens (the blank id); ParakeetError
    for phrases or an LM the model cannot take."""
    try:
        return fusion_models(
            vocab_size,
            encode,
            phrases=biasing.phrases,
            context_score=biasing.boost_score,
            boost_alpha=biasing.boost_alpha,
            lm=biasing.lm,
            lm_alpha=biasing.lm_alpha or 0.0,
        )
    except (ValueError, OSError) as err:
        raise ParakeetError(str(err)) from None


def with_boost(biasing: Biasing | None, boost: Sequence[str]) -> Biasing | None:
    """`biasing`, or the phrases of `boost` with the default weights; not both."""
    if not boost:
        return biasing
    if biasing is not None:
        raise ParakeetError("give boost phrases as boost=[...] or in biasing, not both")
    if isinstance(boost, str):
        raise ParakeetError("boost takes a list of phrases, not one string")
    try:
        return Biasing(tuple(boost))
    except BiasingError as err:
        raise ParakeetError(str(err)) from None
