"""Canary speech recognition and translation on MLX, with NeMo's exact output.

```python
import nemo_mlx_canary as canary
model = canary.load("nvidia/canary-1b-flash")
print(model.transcribe("talk.wav", source_lang="en", target_lang="de").text)
```
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from mlx_audio_frontend import AudioError

from .corpus import transcriber
from .errors import CanaryError
from .loading import DEFAULT_MODEL, load, load_diarizer, load_vad
from .model import Canary
from .prompt import PromptOptions, build_prompt
from .tokenizer import CanaryTokenizer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "AudioError",
    "Canary",
    "CanaryError",
    "CanaryTokenizer",
    "PromptOptions",
    "build_prompt",
    "load",
    "load_diarizer",
    "load_vad",
    "transcriber",
]
