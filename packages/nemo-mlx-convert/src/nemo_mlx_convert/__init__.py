"""Convert NVIDIA NeMo checkpoints (`.nemo` files, Hugging Face repos) to MLX model
directories, without torch, without executing anything from the checkpoint.

`convert_nemo(src, out)` converts a file; `resolve_model(ref)` turns a user's reference
into a ready model directory (converting into the cache once), `resolve_model_of(ref,
model_class, kind)` one of a given class; `open_model_directory(path)` reads one,
including the existing MLX ports' layout.
"""

__version__ = "0.1.0"

from .convert import ConversionSummary, convert_nemo
from .errors import ConversionError
from .mapping import map_module_state, map_state_dict, supported_classes
from .model_dir import ModelDirectory, ModelDirectoryConfig, open_model_directory
from .resolve import default_cache_dir, resolve_model, resolve_model_of
from .torch_checkpoint import load_state_dict

__all__ = [
    "ConversionError",
    "ConversionSummary",
    "ModelDirectory",
    "ModelDirectoryConfig",
    "convert_nemo",
    "default_cache_dir",
    "load_state_dict",
    "map_module_state",
    "map_state_dict",
    "open_model_directory",
    "resolve_model",
    "resolve_model_of",
    "supported_classes",
]
