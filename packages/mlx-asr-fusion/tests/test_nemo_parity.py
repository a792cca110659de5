"""Our n-gram LMs and boosting trees against NeMo's own, built from the same inputs.

`tests/fixtures/fusion/` holds what `tests/reference/make_fusion_fixtures.py` got from NeMo
3.0.0 (`NGramGPULanguageModel.from_arpa`, `GPUBoostingTreeModel.from_config` with the
fixture model's tokenizer): its arrays and its `advance` / `get_final` answers on random
walks (LMs) or on every state (trees).

Tolerance: none. Next states are integers. Scores are float32 sums made in NeMo's order
(the back-off weights from the queried state outward, then the arc's weight) of weights
rounded to float32 from the same float64 values, so they are NeMo's bit for bit; an
`assert_array_equal` (which also compares -inf) would catch a different order of
summation or a weight rounded differently.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_asr_fusion import BoostingTree, BoostingTreeConfig, NGramLM, advance_tables

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "fusion"
META = json.loads((FIXTURES / "fusion.json").read_text())
MODELS = META["models"]
LMS = [name for name, info in MODELS.items() if info["kind"] == "ngram_lm"]
TREES = [name for name, info in MODELS.items() if info["kind"] == "boosting_tree"]


@pytest.fixture(scope="module")
def nemo() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "fusion.npz") as data:
        return {key: data[key] for key in data.files}


def build(name: str, tmp_path: Path) -> NGramLM | BoostingTree:
    info = MODELS[name]
    if info["kind"] == "ngram_lm":
        return NGramLM.from_arpa(
            FIXTURES / info["arpa"],
            info["vocab_size"],
            normalize_unk=info["normalize_unk"],
            token_offset=info["token_offset"],
        )
    phrases = META["phrases"]
    if info["phrases_from_file"]:
        path = tmp_path / "phrases.txt"
        path.write_text("".join(f"  {phrase}\n" for phrase in phrases))
        source = {"key_phrases_file": str(path)}
    else:
        source = {"key_phrases_list": phrases}
    config = BoostingTreeConfig(**source, **info["settings"])
    return BoostingTree.from_config(config, META["phrase_ids"].__getitem__, info["vocab_size"])


@pytest.mark.parametrize("name", list(MODELS))
def test_arrays_equal_nemos(name, nemo, tmp_path):
    ours = build(name, tmp_path)
    arrays = ours.arrays
    assert (ours.num_states, ours.num_arcs) == (
        MODELS[name]["num_states"],
        MODELS[name]["num_arcs"],
    )
    assert ours.max_order == MODELS[name]["max_order"]
    expected = {
        "arcs_weights": arrays.arc_weights,
        "from_states": arrays.arc_from,
        "to_states": arrays.arc_to,
        "ilabels": arrays.arc_labels,
        "start_end_arcs": np.stack([arrays.arcs_start, arrays.arcs_end], axis=1),
        "state_order": arrays.state_order,
        "backoff_to_states": arrays.backoff_to,
        "backoff_weights": arrays.backoff_weights,
        "final_weights": ours.final_weights,
    }
    for key, value in expected.items():
        np.testing.assert_array_equal(value, nemo[f"{name}/{key}"], err_msg=f"{name}: {key}")


def _steps(name: str, nemo: dict) -> dict[str, np.ndarray]:
    """NeMo's queries as steps: (steps, B, ...) for the LMs' walks, one step of every
    state for the trees."""
    prefix = f"{name}/walk" if f"{name}/walk/states" in nemo else f"{name}/all"
    keys = ("states", "scores", "next_states", "final")
    if prefix.endswith("walk"):
        return {key: nemo[f"{prefix}/{key}"] for key in keys}
    return {key: nemo[f"{prefix}/{key}"][None] for key in keys}


@pytest.mark.parametrize("name", list(MODELS))
def test_advance_and_final_equal_nemos(name, nemo, tmp_path):
    ours = build(name, tmp_path)
    steps = _steps(name, nemo)
    for i, states in enumerate(steps["states"]):
        scores, next_states = ours.advance(mx.array(states))
        np.testing.assert_array_equal(np.array(next_states), steps["next_states"][i])
        np.testing.assert_array_equal(np.array(scores), steps["scores"][i])
        np.testing.assert_array_equal(np.array(ours.get_final(mx.array(states))), steps["final"][i])
    # the queries reach far into the model (not only the start and <s> states)
    assert len(np.unique(steps["states"])) > min(20, ours.num_states - 1)


@pytest.mark.parametrize("name", list(MODELS))
def test_advance_with_eos_equals_nemos(name, nemo, tmp_path):
    ours = build(name, tmp_path)
    states = mx.array(nemo[f"{name}/eos/states"])
    scores, next_states = ours.advance(states, eos_id=META["eos_id"])
    np.testing.assert_array_equal(np.array(next_states), nemo[f"{name}/eos/next_states"])
    np.testing.assert_array_equal(np.array(scores), nemo[f"{name}/eos/scores"])


@pytest.mark.parametrize("name", ["lm3", TREES[0]])
def test_compiled_advance_equals_eager(name, nemo, tmp_path):
    """`advance_tables` is a pure function of arrays: it compiles, with the same answers."""
    ours = build(name, tmp_path)
    states = mx.arange(ours.num_states)
    step = partial(advance_tables, vocab_size=ours.vocab_size, max_order=ours.max_order)
    eager = step(ours.tables, states)
    compiled = mx.compile(step)(ours.tables, states)
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
