"""NeMo's character-vocabulary ASR classes (`EncDecRNNTModel`, `EncDecCTCModel`) configured as
the Conformer checkpoints and recipes users still run, and NeMo's outputs for them.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_char_checkpoint_fixtures.py                 # every model
    python tests/reference/make_char_checkpoint_fixtures.py conformer_ctc_char

These classes have no tokenizer: their vocabulary is the config's `labels` (one character
per label, blank after them), copied by NeMo into `joint.vocabulary` (RNNT) or used as
`decoder.vocabulary` (CTC), and decoded by `RNNTDecoding` / `CTCDecoding`, which join the
labels as they are. Their encoder is the original Conformer, not the FastConformer: striding
x4 subsampling (channels = d_model), kernel 31, xscaling, batch-norm convolutions.

- `stt_zh_conformer_transducer_large` (`EncDecRNNTModel`): its own model_config.yaml is not
  published; the config is the recipe its model card names (NeMo's
  `conformer_transducer_char.yaml`, committed in `configs/` with what is known of the real
  checkpoint in its header). Its labels, Chinese characters, are not published either:
  ASSUMED here (`ZH_LABELS`): a space, then the characters of a few Mandarin sentences
  (`_ZH_TEXT`), as NeMo's char recipes put a space first; recorded in `config_sources`.
- `conformer_ctc_char` (`EncDecCTCModel`) and `conformer_hybrid_transducer_ctc_char`
  (`EncDecHybridRNNTCTCModel`): NeMo's published char recipes, complete, labels as published
  (space, a-z, apostrophe: a punctuation mark to NeMo, which pulls it onto the word before).
  NVIDIA released no char Conformer-CTC or hybrid checkpoint (its char CTC checkpoints are
  QuartzNet / Jasper / Citrinet, with a ConvASREncoder this project refuses); models trained
  from these recipes are what users run with these classes.

Sizes are shrunk with `make_checkpoint_fixtures.shrink` (2 layers, d_model 64, 4 heads, LSTM
and joint width 64; subsampling channels follow d_model as published: -1); every flag stays
as published, and the labels are kept whole (28 and `len(ZH_LABELS)`). Weights, tuning,
references and keys are those of `make_checkpoint_fixtures.save_and_record` (tests/reference/
README.md, "Checkpoint fixtures"), with `labels` in the JSON's `config` in place of a
tokenizer.

Writes tests/fixtures/checkpoints/<name>.{nemo,npz,json} (every model's three files, or none).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from nemo.collections.asr.models import EncDecCTCModel, EncDecHybridRNNTCTCModel, EncDecRNNTModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_checkpoint_fixtures as ckpt
import make_model_fixtures as base

COMMAND = "python tests/reference/make_char_checkpoint_fixtures.py"

# Mandarin sentences (no spaces, as AISHELL-2's transcripts): their characters are the
# assumed labels of the zh checkpoint, and they drive its prediction net while tuning.
_ZH_TEXT = [
    "今天天气很好我们去公园散步",
    "请在明天早上七点给我打电话",
    "这个城市的交通非常方便",
    "他每天坐地铁去上班",
    "我想买一张去北京的火车票",
    "会议将在下午三点开始",
    "你喜欢吃中国菜吗",
    "这家餐厅的饭菜很好吃",
    "孩子们在学校学习数学和语文",
    "请把窗户关上外面太冷了",
    "我们下个星期去上海旅游",
    "手机没有电了需要充电",
]
ZH_LABELS = [" ", *sorted(set("".join(_ZH_TEXT)))]
_ZH_LABELS_SOURCE = (
    "assumed: the model card says Mandarin characters (AISHELL-2), the list is not "
    "published; a space, then the characters of make_char_checkpoint_fixtures._ZH_TEXT"
)

CHECKPOINTS: dict[str, ckpt.Checkpoint] = {
    "stt_zh_conformer_transducer_large": ckpt.Checkpoint(
        EncDecRNNTModel,
        "zh",
        len(ZH_LABELS),
        0.8,
        base="stt_zh_conformer_transducer_large",  # the recipe, with the stated labels
        stated={"labels": (ZH_LABELS, _ZH_LABELS_SOURCE)},
    ),
    "conformer_ctc_char": ckpt.Checkpoint(EncDecCTCModel, "en", 28, 0.5),
    "conformer_hybrid_transducer_ctc_char": ckpt.Checkpoint(
        EncDecHybridRNNTCTCModel, "en", 28, 0.9
    ),
}
RECIPES = {
    "conformer_ctc_char": "NeMo recipe examples/asr/conf/conformer/conformer_ctc_char.yaml",
    "conformer_hybrid_transducer_ctc_char": (
        "NeMo recipe examples/asr/conf/conformer/hybrid_transducer_ctc/"
        "conformer_hybrid_transducer_ctc_char.yaml"
    ),
}


def texts(spec: ckpt.Checkpoint) -> list[str]:
    """Text written as the model's labels write it (transducers: the prediction net's input
    while tuning): Mandarin without spaces, or lower-case English without punctuation."""
    if spec.text == "zh":
        return _ZH_TEXT * 4
    table = str.maketrans("", "", ",.?!")
    lines = base.corpus_lines(random.Random(ckpt.SEED))[:48]
    return [line.lower().translate(table) for line in lines]


def with_labels(config: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """The shrunk config with the character vocabulary where NeMo's char classes read it:
    `labels` (RNNT: NeMo copies it into `joint.vocabulary`), and the CTC decoder's
    `vocabulary` (`shrink` empties it for a tokenizer to fill)."""
    config["labels"] = list(labels)
    ctc = config.get("aux_ctc", {}).get("decoder") if "joint" in config else config["decoder"]
    if ctc is not None:
        ctc["vocabulary"] = list(labels)
    return config


def make_fixture(
    name: str, spec: ckpt.Checkpoint, signals: dict[str, np.ndarray], work: Path, staging: Path
) -> None:
    published, sources = ckpt.full_config(name, spec)
    if not sources:  # a recipe, complete as published
        sources = {"*": f"tests/reference/configs/{name}.yaml: {RECIPES[name]}, as published"}
    config, shrunk = ckpt.shrink(published, None, issubclass(spec.cls, EncDecHybridRNNTCTCModel))
    config = with_labels(config, published["labels"])
    if config["encoder"].get("stochastic_depth_start_layer") == 0:
        # conformer_ctc_char.yaml has 0, which NeMo 3.0.0's ConformerEncoder refuses ("has to
        # be in [1, num layers]"); training-only (drop probability 0): NeMo's default, 1
        config["encoder"]["stochastic_depth_start_layer"] = 1
        sources["encoder.stochastic_depth_start_layer"] = (
            "1, NeMo's default: NeMo 3.0.0 refuses the recipe's 0 (training-only, no effect)"
        )
    assert len(config["labels"]) == spec.vocab_size, (name, len(config["labels"]))
    ckpt.save_and_record(name, spec, config, texts(spec), signals, staging, COMMAND, {},
                         {"shrunk": shrunk, "config_sources": sources}, RECIPES.get(name))  # fmt: skip


def main() -> None:
    ckpt.build_all(__doc__, CHECKPOINTS, make_fixture, ckpt.OUT)


if __name__ == "__main__":
    main()
