"""NeMo's Transformer decoder on MLX: cached stepping, greedy and beam search.

`DecoderConfig.from_nemo(cfg)`, `TransformerDecoder(config)`, then
`greedy_search(decoder, encoder_states, lengths, prompts, eos_id=...)` or `beam_search(...)`.
Generic over prompts: the caller (e.g. the `canary` app) builds them.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .cache import DecoderCache, LayerCache
from .config import DecoderConfig
from .decoder import TransformerDecoder
from .search import BeamResult, GreedyResult, beam_search, generation_limits, greedy_search

__version__ = "0.1.0"

__all__ = [
    "BeamResult",
    "DecoderCache",
    "DecoderConfig",
    "GreedyResult",
    "LayerCache",
    "TransformerDecoder",
    "beam_search",
    "generation_limits",
    "greedy_search",
]
