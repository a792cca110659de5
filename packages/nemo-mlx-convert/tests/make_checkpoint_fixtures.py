"""Write small real `torch.save` checkpoints, and torch's own view of their tensors.

Made with torch 2.13.0+cpu. Run with torch installed (the `reference` group, or any
environment with torch and numpy), from the repository root:

    python packages/nemo-mlx-convert/tests/make_checkpoint_fixtures.py

Writes into tests/fixtures/:

- state_dict.ckpt: what `nn.Module.state_dict()` gives (an OrderedDict with `_metadata`)
  holding every dtype the reader supports, views sharing one storage (transposed, sliced
  with a storage offset, strided, expanded with stride 0), a tensor under two names, an
  `nn.Parameter`, 0-d and empty tensors.
- state_dict_expected.npz: each of those tensors as torch materialises it
  (`t.contiguous().numpy()`; bfloat16 as its bits, `.view(torch.int16)`), plus
  `__order__` (the names in state-dict order) and `__torch_version__`.
- big_endian.ckpt: state_dict.ckpt as a big-endian machine writes it (byteorder record
  "big", every storage byte-swapped); torch.load of it is checked against the original.
- mixed_values.ckpt: a state dict with plain values (int, float, str, None) and tensors
  nested in a dict and a list; the tests hold the expected values.
- legacy.pt: the same kind of dict in torch's pre-1.6 (non-zip) format.
"""

from __future__ import annotations

import collections
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "fixtures"


def module_like_state() -> collections.OrderedDict[str, torch.Tensor]:
    torch.manual_seed(0)
    shared = torch.randn(6, 8)
    weight = torch.randn(5, 3)
    bf16 = torch.randn(3, 4).to(torch.bfloat16)
    state = collections.OrderedDict(
        linear_weight=weight,
        tied_weight=weight,  # the same tensor under a second name, as with tied weights
        transposed=shared.t(),  # strides (1, 8)
        sliced=shared[2:5, 1:7],  # storage offset 17
        every_other=shared[:, ::2],  # stride 2 in the last dimension
        expanded=torch.randn(3, 1).expand(3, 4),  # stride 0
        conv_weight=torch.randn(4, 2, 3),
        parameter=torch.nn.Parameter(torch.randn(2, 2)),
        bf16=bf16,
        bf16_transposed=bf16.t(),
        half=torch.randn(3, 2).half(),
        double=torch.randn(3).double(),
        int64=torch.arange(-3, 5),
        int32=torch.arange(4, dtype=torch.int32),
        int16=torch.arange(-1, 2, dtype=torch.int16),
        int8=torch.arange(-2, 2, dtype=torch.int8),
        uint8=torch.arange(250, 254, dtype=torch.uint8),
        boolean=torch.tensor([True, False, True]),
        scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3),
    )
    state._metadata = collections.OrderedDict({"": {"version": 1}})  # as state_dict() sets
    return state


def expected_arrays(state: collections.OrderedDict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    expected = {}
    for name, tensor in state.items():
        tensor = tensor.detach().contiguous()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        expected[name] = tensor.numpy()
    expected["__order__"] = np.array(list(state))
    expected["__torch_version__"] = np.array(torch.__version__)
    return expected


def storage_item_sizes(state: collections.OrderedDict[str, torch.Tensor]) -> dict[str, int]:
    """Storage key -> element size: torch numbers storages in the order it pickles them."""
    keys: dict[int, str] = {}
    sizes = {}
    for tensor in state.values():
        storage = tensor.untyped_storage()
        key = keys.setdefault(storage._cdata, str(len(keys)))
        sizes[key] = tensor.element_size()
    return sizes


def write_big_endian(source: Path, target: Path, item_sizes: dict[str, int]) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            directory, _, key = info.filename.rpartition("/")
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif directory.endswith("/data") and item_sizes[key] > 1:
                data = np.frombuffer(data, f"u{item_sizes[key]}").byteswap().tobytes()
            new.writestr(info.filename, data)


def mixed_values_state() -> dict[str, object]:
    return {
        "weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "step": 7,
        "ratio": 0.5,
        "name": "encoder",
        "nothing": None,
        "nested": {"counts": torch.tensor([1, 2], dtype=torch.int32), "list": [1, torch.ones(2)]},
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    state = module_like_state()
    torch.save(state, OUT / "state_dict.ckpt")
    np.savez(OUT / "state_dict_expected.npz", **expected_arrays(state))

    write_big_endian(OUT / "state_dict.ckpt", OUT / "big_endian.ckpt", storage_item_sizes(state))
    swapped_back = torch.load(OUT / "big_endian.ckpt", weights_only=True)
    for name, tensor in state.items():
        assert torch.equal(swapped_back[name], tensor.detach()), name

    torch.save(mixed_values_state(), OUT / "mixed_values.ckpt")
    legacy = io.BytesIO()
    torch.save({"weight": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    (OUT / "legacy.pt").write_bytes(legacy.getvalue())
    print(f"wrote fixtures into {OUT} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
