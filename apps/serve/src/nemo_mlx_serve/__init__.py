"""An OpenAI-compatible transcription server for NVIDIA's Parakeet and Canary models on MLX.

```python
from nemo_mlx_serve import Compute, ModelSpec, create_app, load_recognizer
compute = Compute()  # the thread that runs MLX
app = create_app([compute.call(load_recognizer, ModelSpec.parse("demo"))], compute)  # ASGI
```
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .app import ServerSettings, create_app
from .batching import BatchLimits
from .compute import Compute
from .models import ModelLoadError, ModelSpec, Options, Recognizer, load_recognizer
from .uploads import UploadLimits

__version__ = "0.1.0"

__all__ = [
    "BatchLimits",
    "Compute",
    "ModelLoadError",
    "ModelSpec",
    "Options",
    "Recognizer",
    "ServerSettings",
    "UploadLimits",
    "create_app",
    "load_recognizer",
]
