"""Phrase boosting and LM fusion for the canary app: the options (`speech_transcript.biasing`)
turned into the beam search's fusion models as NeMo's AED beam builds them
(`TransformerAEDBeamInfer`: the LM, then the boosting tree with `AEDBeamInferConfig`'s depth
scaling 1, its phrases through the tokenizer in the spoken language, the tree's
`source_lang`). NeMo fuses only in its `beam` strategy (its greedy search refuses an LM:
"use beam strategy with beam=1"), and so does this app."""

from __future__ import annotations

from collections.abc import Sequence

from mlx_asr_fusion import FusionModel, fusion_models
from speech_transcript.biasing import Biasing, BiasingError
from speech_transcript.biasing import with_boost as merged_boost

from .errors import CanaryError
from .tokenizer import CanaryTokenizer

AED_DEPTH_SCALING = 1.0  # NeMo's AEDBeamInferConfig.boosting_tree default


def with_boost(biasing: Biasing | None, boost: Sequence[str]) -> Biasing | None:
    """`biasing`, or the phrases of `boost` with the default weights; not both."""
    try:
        return merged_boost(biasing, boost)
    except BiasingError as err:
        raise CanaryError(str(err)) from None


def fusion_for(
    biasing: Biasing | None, tokenizer: CanaryTokenizer, language: str, decoding: str
) -> list[FusionModel]:
    """The fusion models of `biasing` (none without it); CanaryError for greedy decoding,
    the word spotter (no CTC head), phrases or an LM the model cannot take."""
    if not biasing:
        return []
    if biasing.word_spotter:
        raise CanaryError("the word spotter needs a CTC head; Canary has none")
    if decoding != "beam":
        raise CanaryError("phrase boosting and LM fusion need beam decoding, as NeMo's "
                          "(its greedy search takes no fusion models): use --decoding beam")  # fmt: skip
    try:
        return fusion_models(
            tokenizer.vocab_size,
            lambda text: tokenizer.encode(text, language),
            phrases=biasing.phrases,
            context_score=biasing.boost_score,
            boost_alpha=biasing.boost_alpha,
            lm=biasing.lm,
            lm_alpha=biasing.lm_alpha or 0.0,
            depth_scaling=AED_DEPTH_SCALING,
        )
    except (ValueError, OSError) as err:
        raise CanaryError(str(err)) from None
