"""The fusion fixtures' inputs as mlx-asr-fusion models, for the decoding tests.

`tests/fixtures/fusion/`: `lm3.arpa` and the key phrases of `fusion.json` (NeMo's
`text_to_ids` of each through the fixture models' tokenizer), as
`make_fusion_fixtures.py` and `make_ctc_fusion_fixtures.py` gave them to NeMo.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlx_asr_fusion import BoostingTree, BoostingTreeConfig, FusionModel, NGramLM

FUSION_DIR = Path(__file__).resolve().parent / "fixtures" / "fusion"
FUSION = json.loads((FUSION_DIR / "fusion.json").read_text())


def fusion_models(setting: dict[str, float], vocab_size: int) -> list[FusionModel]:
    """The models of a fixture setting ({"lm": alpha, "boost": alpha}), in NeMo's order:
    the LM, then the boosting tree (key phrases with NeMo's defaults)."""
    models = []
    if "lm" in setting:
        lm = NGramLM.from_arpa(FUSION_DIR / FUSION["decoding"]["lm"], vocab_size)
        models.append(FusionModel(lm, setting["lm"]))
    if "boost" in setting:
        config = BoostingTreeConfig(
            key_phrases_list=FUSION["decoding"]["boosting_tree"]["key_phrases_list"]
        )
        tree = BoostingTree.from_config(config, FUSION["phrase_ids"].__getitem__, vocab_size)
        models.append(FusionModel(tree, setting["boost"]))
    return models
