"""Phrase boosting and LM fusion for the parakeet app: the options (`speech_transcript.biasing`)
turned into the decoders' fusion models (`mlx_asr_fusion.fusion_models`, NeMo's order: the
LM, then the tree), with the model's tokenizer encoding the phrases as NeMo's tree builder
does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mlx_asr_fusion import FusionModel, fusion_models
from speech_transcript.biasing import Biasing, BiasingError
from speech_transcript.biasing import with_boost as merged_boost

from .errors import ParakeetError
from .spotting import WordSpotter

if TYPE_CHECKING:
    from .model import Parakeet


Aids = tuple[list[FusionModel], WordSpotter | None]


def aids_for(biasing: Biasing, model: Parakeet) -> Aids:
    """What the decoders take for `biasing`: the fusion models of the chosen head, or the
    word spotter (`spotting.py`) on the model's CTC head."""
    if biasing.word_spotter:
        return [], WordSpotter(biasing, model.ctc, model.tokenizer)
    head = model.ctc if model.head == "ctc" else model.transducer
    return fusion_for(biasing, head.config.blank_id, model.tokenizer.encode), None


def without_spotter(aids: Aids) -> list[FusionModel]:
    """The fusion models alone, for decoders that cannot spot (a stream): ParakeetError
    where a word spotter was asked for."""
    if aids[1] is not None:
        raise ParakeetError("the word spotter works on whole inputs, not on a stream")
    return aids[0]


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
    try:
        return merged_boost(biasing, boost)
    except BiasingError as err:
        raise ParakeetError(str(err)) from None
