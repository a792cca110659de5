"""CTC decoding on MLX, as NVIDIA NeMo: the `ConvASRDecoder` head and greedy decoding.

`CTCConfig.from_nemo(cfg["decoder"])` (or `cfg["aux_ctc"]["decoder"]` for hybrid models),
`CTCHead(config)` with NeMo's parameter names, `greedy_decode(log_probs, lengths, blank_id=...)`
(with `fusion=[...]`, NeMo's greedy shallow fusion of an n-gram LM and a boosting tree),
`beam_search(log_probs, blank_id=...)` as NeMo's `beam_batch` strategy (with `fusion=[...]`,
its fused beam); CTC-based word spotting as NeMo's `run_word_spotter` (`SpottingGraph`,
`spot_words`) and its merge into a greedy CTC or transducer result (`merge_spotted`).
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .beam import CTCBeamHypothesis, beam_search
from .greedy import CTCHypothesis, CTCToken, greedy_decode
from .head import CTCConfig, CTCHead
from .spotting import SpottedWord, SpotterConfig, spot_words
from .spotting_graph import SpottingGraph
from .spotting_merge import MergedWord, ctc_token_frames, merge_spotted, merged_text

__version__ = "0.1.0"

__all__ = [
    "CTCBeamHypothesis",
    "CTCConfig",
    "CTCHead",
    "CTCHypothesis",
    "CTCToken",
    "MergedWord",
    "SpottedWord",
    "SpotterConfig",
    "SpottingGraph",
    "beam_search",
    "ctc_token_frames",
    "greedy_decode",
    "merge_spotted",
    "merged_text",
    "spot_words",
]
