"""RNNT and TDT transducer decoding on MLX, token for token as NVIDIA NeMo.

`TransducerConfig.from_nemo(model_cfg)` reads the prediction network, joint and decoding
settings of an RNNT/TDT (or hybrid) model; `Transducer(config)` holds `decoder` and
`joint` with NeMo's parameter names; `Transducer.greedy(encoder_out, lengths)` decodes a
batch like NeMo's `greedy_batch` strategy, optionally with shallow fusion of an n-gram LM
and a boosting tree (`fusion=[mlx_asr_fusion.FusionModel(model, alpha), ...]`);
`greedy_reference` makes the same decisions as a plain loop, one utterance and frame at a
time (slow, written to be read).
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .beam import BeamHypothesis, beam_search_rnnt, beam_search_tdt
from .config import TransducerConfig
from .greedy import greedy_decode
from .greedy_reference import greedy_reference
from .hypothesis import Hypothesis, Token
from .model import Transducer
from .networks import JointNetwork, LSTMLayer, PredictionNetwork

__version__ = "0.1.0"

__all__ = [
    "BeamHypothesis",
    "Hypothesis",
    "JointNetwork",
    "LSTMLayer",
    "PredictionNetwork",
    "Token",
    "Transducer",
    "TransducerConfig",
    "beam_search_rnnt",
    "beam_search_tdt",
    "greedy_decode",
    "greedy_reference",
]
