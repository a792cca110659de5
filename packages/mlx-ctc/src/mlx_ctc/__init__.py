"""CTC decoding on MLX, as NVIDIA NeMo: the `ConvASRDecoder` head and greedy decoding.

`CTCConfig.from_nemo(cfg["decoder"])` (or `cfg["aux_ctc"]["decoder"]` for hybrid models),
`CTCHead(config)` with NeMo's parameter names, `greedy_decode(log_probs, lengths, blank_id=...)`.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .greedy import CTCHypothesis, CTCToken, greedy_decode
from .head import CTCConfig, CTCHead

__version__ = "0.1.0"

__all__ = ["CTCConfig", "CTCHead", "CTCHypothesis", "CTCToken", "greedy_decode"]
