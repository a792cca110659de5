"""Shallow-fusion models for ASR decoding on MLX, as NVIDIA NeMo's: a token n-gram LM read
from an ARPA file (`NGramLM`, NeMo's `NGramGPULanguageModel`) and a phrase-boosting tree
(`BoostingTree`, NeMo's `GPUBoostingTreeModel`), both batched acceptors with NeMo's
`get_init_states` / `advance` / `get_final` interface. The decoder packages take them as an
optional argument of their searches.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .acceptor import NEG_INF, AcceptorArrays, SuffixTreeAcceptor, advance_tables
from .arpa import DEFAULT_TOKEN_OFFSET, NGram, read_arpa
from .boosting import BoostingTree, BoostingTreeConfig
from .build import fusion_models
from .fusion import (
    FusionModel,
    add_fusion_scores,
    fusion_next,
    fusion_scores,
    fusion_shapes,
    fusion_tables,
)
from .ngram import NGramLM
from .per_item import PerItemAcceptor

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TOKEN_OFFSET",
    "NEG_INF",
    "AcceptorArrays",
    "BoostingTree",
    "BoostingTreeConfig",
    "FusionModel",
    "NGram",
    "NGramLM",
    "PerItemAcceptor",
    "SuffixTreeAcceptor",
    "add_fusion_scores",
    "advance_tables",
    "fusion_models",
    "fusion_next",
    "fusion_scores",
    "fusion_shapes",
    "fusion_tables",
    "read_arpa",
]
