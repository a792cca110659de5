"""The FastConformer encoder of NVIDIA NeMo on MLX, exact to NeMo's `ConformerEncoder`.

`ConformerConfig.from_nemo(cfg["encoder"])` reads a NeMo encoder config; `Conformer(config)`
is an `mlx.nn.Module` whose parameter names are NeMo's, with channels-last convolutions.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .config import ConformerConfig
from .encoder import Conformer
from .prompt import DEFAULT_LANGUAGE, LanguagePrompt, PromptConfig
from .quantize import quantize_linears
from .speaker import SpeakerKernels, SpeakerTargets

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_LANGUAGE",
    "Conformer",
    "ConformerConfig",
    "LanguagePrompt",
    "PromptConfig",
    "SpeakerKernels",
    "SpeakerTargets",
    "quantize_linears",
]
