"""The batching options as `nemo-mlx-serve` reads them (no server started)."""

from __future__ import annotations

import pytest

from nemo_mlx_serve.cli import batch_limits, build_parser
from nemo_mlx_serve.models import ModelLoadError


def limits(*options: str):
    return batch_limits(build_parser().parse_args(["--model", "demo", *options]))


def test_a_full_round_is_one_batch_unless_told():
    assert (limits().max_batch, limits().batch_size) == (16, 16)
    assert (limits("--max-batch", "32").max_batch, limits("--max-batch", "32").batch_size) == (
        32,
        32,
    )
    assert limits("--max-batch", "32", "--batch-size", "8").batch_size == 8
    assert limits("--max-wait-ms", "50").max_wait == pytest.approx(0.05)


@pytest.mark.parametrize(
    "options", [("--max-batch", "0"), ("--batch-size", "0"), ("--max-batch", "-3")]
)
def test_batch_limits_below_one_are_refused(options):
    with pytest.raises(ModelLoadError, match="--max-batch and --batch-size must be at least 1"):
        limits(*options)
