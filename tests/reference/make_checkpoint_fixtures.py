"""NeMo models configured as NVIDIA's released Parakeet checkpoints, and NeMo's outputs for them.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_checkpoint_fixtures.py            # every checkpoint
    python tests/reference/make_checkpoint_fixtures.py parakeet-tdt-0.6b-v2

Each model starts from the checkpoint's own published `model_config.yaml`, committed under
`tests/reference/configs/` with its source in the file's header. Only sizes are shrunk
(`SIZES`: layers, d_model, heads, subsampling channels, prediction and joint width,
vocabulary); every flag is kept as published: `use_bias`, `xscaling`, `untie_biases`,
subsampling and its factor, `causal_downsampling`, conv norm, kernel and context,
attention model and `att_context_size` / style, LSTM layers, TDT durations, `max_symbols`,
the whole preprocessor (dither is training-only in NeMo, so the published value is kept) and
the decoding section. What was changed is recorded, value by value, in each fixture's JSON
(`shrunk`), and `published_config_sha256` names the config file it came from.

The tokenizer is a SentencePiece model of the published type (`bpe`), trained here on text
written as the checkpoint's own tokenizer writes it: cased with punctuation for the PnC
checkpoints, lower case without punctuation for the others, and for the multilingual v3 a
corpus in several of its 25 languages with their punctuation (`¿ ¡ « »`), so that NeMo's
punctuation rules (text, TDT timestamp refinement, word grouping) see the same characters.

Weights are NeMo's random initialisation, with the few offsets and scales of
`make_model_fixtures.make_decisions_depend_on_audio` set so that greedy decoding varies with
the audio (asserted). References come from the model restored from its `.nemo`, in eval mode,
through `make_model_fixtures.references` (the same keys as the other model fixtures:
tests/reference/README.md).

Writes tests/fixtures/checkpoints/<checkpoint>.{nemo,npz,json} (every checkpoint's three
files, or none).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece
import torch
import yaml
from nemo.collections.asr.models import (
    ASRModel,
    EncDecCTCModelBPE,
    EncDecHybridRNNTCTCBPEModel,
    EncDecHybridRNNTCTCModel,
    EncDecRNNTBPEModel,
)
from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base

CONFIGS = Path(__file__).resolve().parent / "configs"
OUT = base.ROOT / "tests" / "fixtures" / "checkpoints"
COMMAND = "python tests/reference/make_checkpoint_fixtures.py"
SEED = base.SEED

# The sizes that are shrunk, and to what. Everything else is the published value.
SIZES = {
    "n_layers": 2,
    "d_model": 64,
    "n_heads": 4,
    "subsampling_conv_channels": 32,
    "pred_hidden": 64,
    "joint_hidden": 64,
}
SECTIONS = ("preprocessor", "encoder", "decoder", "joint", "decoding", "loss", "aux_ctc",
            "model_defaults", "spec_augment", "sample_rate", "interctc", "rnnt_reduction")  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    cls: type[ASRModel]
    text: str  # how the checkpoint's tokenizer writes text: "pnc", "lower" or "multilingual"
    vocab_size: int
    blank_share: float  # share of samples on which blank wins (make_model_fixtures)
    # Where the checkpoint's whole config was not published (see the config file's header):
    # the complete config its stated values are laid over, and values stated elsewhere than
    # in that file ({dotted key: (value, source)}).
    base: str | None = None
    stated: dict[str, tuple[Any, str]] = field(default_factory=dict)
    # pieces the tokenizer holds as user-defined symbols where the published vocabulary
    # does not list them (`special_pieces`): a prompt model's language tags
    special: tuple[str, ...] = ()


_PARITY_MD = "mudler/parakeet.cpp docs/parity.md (values read from the .nemo's config)"
CHECKPOINTS: dict[str, Checkpoint] = {
    "parakeet-tdt-0.6b-v2": Checkpoint(EncDecRNNTBPEModel, "pnc", 128, 0.5),
    "parakeet-tdt-0.6b-v3": Checkpoint(EncDecRNNTBPEModel, "multilingual", 512, 0.5),
    # The 1.1b configs are partial: laid over v2's published config (the Parakeet family's),
    # with the head made RNNT / CTC as the model class is.
    "parakeet-rnnt-1.1b": Checkpoint(
        EncDecRNNTBPEModel,
        "lower",
        128,
        0.8,
        base="parakeet-tdt-0.6b-v2",
        stated={
            "encoder.use_bias": (
                True,
                "transformers PR #41545: the 1.1b family's converted "
                "config has attention_bias=True (parakeet-ctc-1.1b)",
            )
        },
    ),
    "parakeet-ctc-1.1b": Checkpoint(
        EncDecCTCModelBPE, "lower", 128, 0.5, base="parakeet-tdt-0.6b-v2"
    ),
    # The recipe the 110m was trained from, with what the released checkpoint has differently.
    "parakeet-tdt_ctc-110m": Checkpoint(
        EncDecHybridRNNTCTCBPEModel,
        "pnc",
        128,
        0.5,
        base="parakeet-tdt_ctc-110m",
        stated={
            "preprocessor.features": (80, _PARITY_MD),
            "encoder.feat_in": (80, _PARITY_MD),
            "encoder.xscaling": (False, _PARITY_MD),
            "rnnt_reduction": (
                "mean_volume",
                "NVIDIA-NeMo/Speech issue #14710, quoting the .nemo's model_config.yaml",
            ),
        },
    ),
}


# ---------------------------------------------------------------------------------------------
# Tokenizers written as the checkpoints' own

# Sentences in some of v3's 25 languages, with their punctuation: the tokenizer learns the
# characters (¿ ¡ « » „ “ accents), and NeMo's punctuation rules see them as v3's do.
_MULTILINGUAL = [
    "¿Dónde está la estación? ¡Allí, al norte!",
    "¿Cuántas personas votaron el martes?",
    "¡Qué brisa tan cálida sobre el puerto!",
    "Il a dit « bonjour » à Stella, puis il est parti.",
    "« Sept marins fatigués » comptaient les oiseaux à midi.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Sie sagte: „Bitte ruf Stella an“, und ging.",
    "Zeven vermoeide zeilers telden veertig vogels.",
    "Sette marinai stanchi contarono quaranta uccelli a mezzogiorno.",
    "Czy to jest stacja? Tak, ta na północy.",
    "Sju trötta sjömän räknade fyrtio fåglar vid middagstid.",
    "Noventa e nove pessoas votaram na terça-feira.",
]


def corpus(text: str, rng: random.Random) -> list[str]:
    lines = base.corpus_lines(rng)
    if text == "lower":  # no punctuation, no capitals: the English 1.1b and streaming models
        table = str.maketrans("", "", ",.?!")
        return [line.lower().translate(table) for line in lines]
    if text == "multilingual":
        return lines + [line for line in _MULTILINGUAL for _ in range(20)]
    return lines


def special_pieces(published: dict[str, Any]) -> list[str]:
    """The pieces after `<unk>` that a published vocabulary starts with: v3's 273 `<|...|>`
    tokens (and the digits among them), which it holds as user-defined symbols.

    Their kind (user-defined or control) is in the real `tokenizer.model`, not in the
    config: user-defined is what the config's order shows (digits among them). Our decoder
    and NeMo's both read the kind from the same `.model`, so either is decoded alike.
    """
    vocabulary = (published.get("joint") or {}).get("vocabulary") or published.get("labels") or []
    special = []
    for piece in vocabulary[1:]:
        if not re.fullmatch(r"<.*>|\d", piece):
            break
        special.append(piece)
    return special


def train_tokenizer(directory: Path, published: dict[str, Any], spec: Checkpoint) -> dict:
    """A SentencePiece model of the published type; returns the `tokenizer` section."""
    kind = published["tokenizer"]["type"]
    if kind != "bpe":
        raise SystemExit(f"tokenizer type {kind!r}: only SentencePiece (bpe) is built here")
    directory.mkdir(parents=True, exist_ok=True)
    lines = corpus(spec.text, random.Random(SEED))
    (directory / "corpus.txt").write_text("\n".join(lines) + "\n")
    sentencepiece.set_random_generator_seed(SEED)
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        create_spt_model("corpus.txt", vocab_size=spec.vocab_size, sample_size=-1,
                         do_lower_case=False, tokenizer_type="bpe", output_dir=".",
                         user_defined_symbols=special_pieces(published) or list(spec.special) or None)  # fmt: skip
    finally:
        os.chdir(cwd)
    # the published section names files inside the real .nemo (nemo:<hash>_tokenizer.model)
    return {"dir": str(directory), "type": "bpe"}


# ---------------------------------------------------------------------------------------------
# Configs: the published one, sizes shrunk


def published_config(name: str) -> dict[str, Any]:
    """A committed config file, interpolations resolved and a `model:` wrapper taken off."""
    config = OmegaConf.create(yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()))
    config = OmegaConf.to_container(config, resolve=True)
    return config.get("model", config)


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, key = dotted.split(".")
    for parent in parents:
        tree = tree.setdefault(parent, {})
    tree[key] = value


def as_head(config: dict[str, Any], cls: type[ASRModel]) -> dict[str, Any]:
    """A TDT config's sections for a plain RNNT or a CTC model (NeMo's layouts for them)."""
    config = json.loads(json.dumps(config))
    if cls is EncDecRNNTBPEModel and "durations" in config["decoding"]:
        config["decoding"]["model_type"] = "rnnt"
        del config["decoding"]["durations"]
        config["joint"]["num_extra_outputs"] = 0
        config["model_defaults"].pop("tdt_durations", None)
        config["loss"] = {"loss_name": "default"}
    if cls is EncDecCTCModelBPE:
        for key in ("joint", "loss", "aux_ctc"):
            config.pop(key, None)
        config["decoder"] = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                             "feat_in": config["encoder"]["d_model"], "num_classes": -1,
                             "vocabulary": []}  # fmt: skip
        config["decoding"] = {"strategy": "greedy_batch"}
        config["model_defaults"] = {"enc_hidden": config["encoder"]["d_model"]}
    return config


def full_config(name: str, spec: Checkpoint) -> tuple[dict[str, Any], dict[str, str]]:
    """The checkpoint's config, and where each value not in its own published file came from.

    A complete published config is used as it is. A partial one (the 1.1b models) is laid
    over `spec.base`'s, a recipe (the 110m) gets the values its released checkpoint is
    stated to have; `sources` names the origin of every such value.
    """
    published = published_config(name)
    if spec.base is None:
        return published, {}
    sources: dict[str, str] = {}
    if spec.base != name:
        config = as_head(published_config(spec.base), spec.cls)
        sources["*"] = f"tests/reference/configs/{spec.base}.yaml, head made {spec.cls.__name__}'s"
        for key, value in _leaves(published).items():
            if key in ("target", "decoder.vocab_size", "joint.num_classes", "decoder.num_classes"):
                continue  # the class, and vocabulary sizes (shrunk with the tokenizer)
            _put(config, key, value)
            sources[key] = (
                f"tests/reference/configs/{name}.yaml (stated values, sources in its header)"
            )
    else:
        config = published
        sources["*"] = f"tests/reference/configs/{name}.yaml: the training recipe"
    for key, (value, source) in spec.stated.items():
        _put(config, key, value)
        sources[key] = source
    return config, sources


def _set(section: dict[str, Any], key: str, value: Any, path: str, shrunk: dict) -> None:
    if key in section and section[key] != value:
        shrunk[f"{path}.{key}"] = [section[key], value]
        section[key] = value


def shrink(
    published: dict[str, Any], tokenizer: dict[str, Any] | None, hybrid: bool
) -> tuple[dict, dict]:
    """The published config with only `SIZES` changed; returns (config, {path: [old, new]}).

    `tokenizer` is the `tokenizer` section (None for a character model, whose vocabulary is
    its `labels`: the caller sets them)."""
    config = {k: v for k, v in published.items() if k in SECTIONS}
    config = json.loads(json.dumps(config))  # a deep copy
    shrunk: dict[str, list[Any]] = {}
    if tokenizer is not None:
        config["tokenizer"] = tokenizer
    config["optim"] = None
    d, pred, joint = SIZES["d_model"], SIZES["pred_hidden"], SIZES["joint_hidden"]
    enc = config["encoder"]
    for key in ("n_layers", "d_model", "n_heads"):
        _set(enc, key, SIZES[key], "encoder", shrunk)
    if enc.get("subsampling_conv_channels", -1) != -1:  # -1: d_model's
        _set(
            enc, "subsampling_conv_channels", SIZES["subsampling_conv_channels"], "encoder", shrunk
        )
    if enc.get("feat_out", -1) not in (-1, None):
        _set(enc, "feat_out", d, "encoder", shrunk)
    if "model_defaults" in config:
        defaults = config["model_defaults"]
        for key, value in (("enc_hidden", d), ("pred_hidden", pred), ("joint_hidden", joint)):
            _set(defaults, key, value, "model_defaults", shrunk)
    if "joint" in config:
        _set(config["decoder"]["prednet"], "pred_hidden", pred, "decoder.prednet", shrunk)
        net = config["joint"]["jointnet"]
        for key, value in (("encoder_hidden", d), ("pred_hidden", pred), ("joint_hidden", joint)):
            _set(net, key, value, "joint.jointnet", shrunk)
    # a CTC head: a CTC model's decoder, or a hybrid's aux_ctc (a TDT checkpoint's unused
    # aux_ctc section stays as published)
    ctc = config["decoder"] if "joint" not in config else None
    if hybrid:
        ctc = config["aux_ctc"]["decoder"]
    if ctc is not None:
        _set(ctc, "feat_in", d, "ctc decoder", shrunk)
        ctc["num_classes"], ctc["vocabulary"] = -1, []  # NeMo sets them from the tokenizer
    return config, shrunk


# ---------------------------------------------------------------------------------------------


def make_fixture(
    name: str, spec: Checkpoint, signals: dict[str, np.ndarray], work: Path, staging: Path
) -> None:
    published, sources = full_config(name, spec)
    tokenizer = train_tokenizer(work / name / "tokenizer", published, spec)
    config, shrunk = shrink(published, tokenizer, issubclass(spec.cls, EncDecHybridRNNTCTCModel))
    texts = [line for line in corpus(spec.text, random.Random(SEED))[:48]]
    tokenizer_sha = base.file_sha256(Path(tokenizer["dir"]) / "tokenizer.model")
    save_and_record(name, spec, config, texts, signals, staging, COMMAND,
                    {"tokenizer_model_sha256": tokenizer_sha},
                    {"shrunk": shrunk, "config_sources": sources})  # fmt: skip


def save_and_record(
    name: str,
    spec: Checkpoint,
    config: dict[str, Any],
    texts: list[str],
    signals: dict[str, np.ndarray],
    staging: Path,
    command: str,
    provenance: dict[str, Any],
    about: dict[str, Any],
    checkpoint: str | None = None,
) -> None:
    """Build `spec.cls` from the shrunk `config`, make its decisions depend on the audio,
    save it, and write NeMo's references of the restored model to `staging`.

    `texts` drive the prediction net while tuning (transducers); `provenance` goes after the
    command and versions, `about` (what was shrunk, where values came from) after the
    config's name; `checkpoint` is the model id recorded (default `nvidia/<name>`).
    """
    config_path = CONFIGS / f"{name}.yaml"
    torch.manual_seed(SEED)
    model = spec.cls(cfg=OmegaConf.create(config)).eval()
    speech = [signals[c] for c in base.SPEECH_CLIPS]
    chosen = base.make_decisions_depend_on_audio(model, speech, texts, spec.blank_share)
    path = staging / f"{name}.nemo"
    model.save_to(str(path))
    restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
    decoding = restored.cfg.get("decoding") or {}
    arrays, meta = base.references(restored, signals)
    meta.update(
        checkpoint=checkpoint or f"nvidia/{name}",
        published_config=str(config_path.relative_to(base.ROOT)),
        published_config_sha256=base.file_sha256(config_path),
        **about,
        decoding_strategy=decoding.get("strategy"),
        max_symbols=(decoding.get("greedy") or {}).get("max_symbols"),
    )
    meta = {
        **base.made_by(f"{command} {name}"),
        **provenance,
        "weight_choices": chosen,
        **meta,
    }
    print(f"{name}: {path.stat().st_size / 1e6:.2f} MB .nemo, {meta['geometry']}")
    print(f"  shrunk: {json.dumps(meta.get('shrunk'), ensure_ascii=False)}")
    print(f"  stats: {json.dumps(meta['stats'])}")
    base.check_varied(meta["stats"])
    np.savez_compressed(staging / f"{name}.npz", **arrays)
    (staging / f"{name}.json").write_text(json.dumps(base.to_jsonable(meta), indent=1) + "\n")


def chosen_checkpoints(doc: str, checkpoints: Mapping[str, Any]) -> list[str]:
    """The checkpoints named on the command line (all of them when none is), checked."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="CHECKPOINT", help=", ".join(checkpoints))
    names = parser.parse_args().names or list(checkpoints)
    unknown = sorted(set(names) - set(checkpoints))
    if unknown:
        parser.error(
            f"unknown checkpoint {', '.join(unknown)}; choose from {', '.join(checkpoints)}"
        )
    return names


def build_all(
    doc: str, checkpoints: Mapping[str, Any], make: Callable[..., None], out: Path
) -> None:
    """Build the checkpoints named on the command line with `make(name, spec, signals, work,
    staging)`; publish their files into `out` only once every one passed its checks."""
    names = chosen_checkpoints(doc, checkpoints)
    np.random.seed(SEED)  # noqa: NPY002 - in case a NeMo code path draws from the global RNG
    signals = {clip: base.load_clip(clip) for clip in base.CLIPS}
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        for name in names:
            make(name, checkpoints[name], signals, Path(tmp), staging)
        base.publish(staging, out)


def main() -> None:
    build_all(__doc__, CHECKPOINTS, make_fixture, OUT)


if __name__ == "__main__":
    main()
