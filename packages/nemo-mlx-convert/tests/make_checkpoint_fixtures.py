"""Write small real `torch.save` checkpoints and torch's own view of their tensors.

Run with torch installed (the `reference` group), from the repository root:

    python packages/nemo-mlx-convert/tests/make_checkpoint_fixtures.py

Writes tests/fixtures/state_dict.ckpt (every dtype the reader supports, views sharing one
storage with offsets and strides, 0-d and empty tensors, an OrderedDict with torch's
`_metadata`, as `module.state_dict()` produces) and tests/fixtures/state_dict_expected.npz
(each tensor as torch materialises it; bfloat16 as its float32 values). The torch version is
recorded in the npz under `__torch_version__`.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "fixtures"


def main() -> None:
    torch.manual_seed(0)
    shared = torch.randn(6, 8)
    state = collections.OrderedDict(
        linear_weight=torch.randn(5, 3),
        transposed=shared.t(),  # a view: strides (1, 8)
        sliced=shared[2:5, 1:7],  # a view with a storage offset
        every_other=shared[:, ::2],  # non-unit stride
        conv_weight=torch.randn(4, 2, 3),
        bf16=torch.randn(7).to(torch.bfloat16),
        half=torch.randn(3, 2).half(),
        double=torch.randn(3).double(),
        int64=torch.arange(-3, 5),
        int32=torch.arange(4, dtype=torch.int32),
        int16=torch.arange(3, dtype=torch.int16),
        int8=torch.arange(-2, 2, dtype=torch.int8),
        uint8=torch.arange(4, dtype=torch.uint8),
        boolean=torch.tensor([True, False, True]),
        scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3),
    )
    state._metadata = collections.OrderedDict(
        {"": {"version": 1}}
    )  # as nn.Module.state_dict() sets
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save(state, OUT / "state_dict.ckpt")
    expected = {
        name: (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy()
        for name, t in state.items()
    }
    expected["__torch_version__"] = np.array(torch.__version__)
    np.savez(OUT / "state_dict_expected.npz", **expected)
    print(f"wrote {OUT / 'state_dict.ckpt'} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
