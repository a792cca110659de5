"""Offline encoder time of the code checked out where it is imported from: run it from two
checkouts alternately (PYTHONPATH at each one's package sources) to compare them.

Weights random and in memory (not mapped from a file), 12 layers of parakeet-tdt-0.6b-v2's
width (d_model 1024, 8 heads, xscaling and biases off as published), 30 s of features.
    python benchmarks/encoder_ab.py LABEL
"""

import statistics
import sys
import time

import mlx_conformer  # first: it loads the optimised BLAS before MLX (mlx-cpu-runtime)

# isort: split
import mlx.core as mx

Conformer, ConformerConfig = mlx_conformer.Conformer, mlx_conformer.ConformerConfig

cfg = ConformerConfig.from_nemo(
    {
        "feat_in": 128,
        "n_layers": 12,
        "d_model": 1024,
        "n_heads": 8,
        "ff_expansion_factor": 4,
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "subsampling_conv_channels": 256,
        "conv_kernel_size": 9,
        "xscaling": False,
        "use_bias": False,
    }
)
mx.random.seed(0)
enc = Conformer(cfg)
mx.eval(enc.parameters())
x = mx.random.normal((1, 3000, 128))
mx.eval(x)
mx.eval(enc(x)[0])
ts = []
for _ in range(3):
    t = time.perf_counter()
    mx.eval(enc(x)[0])
    ts.append(time.perf_counter() - t)
print(sys.argv[1], "median s", round(statistics.median(ts), 3))
