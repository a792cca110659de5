"""NeMo's n-gram LM and phrase-boosting tree, and their answers, for mlx-asr-fusion's tests.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch) and the model
fixtures (`make_model_fixtures.py`). From the repository root:

    python tests/reference/make_fusion_fixtures.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_fusion_fixtures.py

About a minute on two CPU cores. The tokenizer is `tests/fixtures/models/tdt.nemo`'s
(SentencePiece BPE, 128 pieces), restored by NeMo.

Input data (made here, not by NeMo: an ARPA file is an input):
- `lm3.arpa`: a token 3-gram LM counted from the first `LM_LINES` lines of the fixture
  tokenizer's own corpus (`make_model_fixtures.corpus_lines`), tokens written as
  `chr(id + 100)` as NeMo's LM tooling writes them; absolute discounting (D = 0.5) with
  back-off weights that make each history's distribution sum to one; `<unk>` as the
  unigram of one more count; n-grams that are no history carry no back-off field;
- `lm2.arpa`: a 2-gram LM from the next `LM_LINES` lines, without `<unk>` (so tokens it
  lacks score -inf), which also takes NeMo's highest-order path at order 2.

NeMo's outputs (`NGramGPULanguageModel.from_arpa`, `GPUBoostingTreeModel.from_config`, on
the CPU: the PyTorch `advance`):
- `fusion.npz`, per model `<name>/`: NeMo's arrays (`arcs_weights`, `from_states`,
  `to_states`, `ilabels` up to `num_arcs`; `start_end_arcs`, `state_order`,
  `backoff_to_states`, `backoff_weights`, `final_weights` after `_resolve_final`), and its
  answers: `walk/states` (steps, B) with `walk/scores` (steps, B, V), `walk/next_states`,
  `walk/final` for LMs (random walks: each item starts at `<s>`, the start state or a
  random state and reads a label drawn from the LM's own distribution, or uniformly one
  time in four, so that walks reach the deep states); for trees every state at once
  (`all/...`); and `eos/...`: `advance(states, eos_id=EOS_ID)`.
- `fusion.json`: versions and command, the settings of each model, its sizes, the key
  phrases and NeMo's `text_to_ids` of each; and `decoding`: NeMo's greedy decoding
  (`greedy_batch`, label looping) of `tdt.nemo` and `rnnt.nemo` with shallow fusion, set
  as NeMo's decoding config sets it (`greedy.ngram_lm_model` = lm3.arpa with
  `ngram_lm_alpha`, `greedy.boosting_tree` = the key phrases with NeMo's defaults and
  `boosting_tree_alpha`, and both), on NeMo's own encoder output of each clip (the
  models' `.npz`): per clip alone (`ids`, `frames`, TDT `durations`), all clips as one
  padded batch (`batched`), and `transcribe` on the audio (`transcribe`: ids, batch size
  1, the speech clips). `plain` is the same without fusion; `changed` lists the clips
  whose ids fusion changed (the script asserts there are some).
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nemo.collections.asr.models import ASRModel
from nemo.collections.asr.parts.context_biasing.boosting_graph_batched import (
    BoostingTreeModelConfig,
    GPUBoostingTreeModel,
)
from nemo.collections.asr.parts.submodules.ngram_lm.ngram_lm_batched import NGramGPULanguageModel
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base

ROOT = base.ROOT
MODEL = ROOT / "tests" / "fixtures" / "models" / "tdt.nemo"
OUT = ROOT / "tests" / "fixtures" / "fusion"
COMMAND = "python tests/reference/make_fusion_fixtures.py"
SEED = 0
TOKEN_OFFSET = 100
LM_LINES = 120
DISCOUNT = 0.5
WALKS, WALK_STEPS = 16, 10
EOS_ID = 5  # any token: `advance(..., eos_id)` scores the end of the sentence there

PHRASES = [
    "Stella",
    "seven tired sailors",
    "quiet harbour",
    "harbour",
    "north station",
    "the lazy dog",
    "lazy",
    "Stella",  # a repeat: NeMo keeps one
    "Zanzibar",  # not in the corpus: pieces the tree has nowhere else
    "nine hundred twelve people",
]
TREES: dict[str, dict[str, Any]] = {
    "boost_default": {},  # NeMo's defaults: context 1, depth scaling 2, final eos 1
    "boost_scored": {
        "context_score": 3.0,
        "depth_scaling": 1.0,
        "unk_score": -0.5,
        "final_eos_score": 2.0,
        "score_per_phrase": 10.0,
    },
    "boost_uniform": {"context_score": 2.0, "uniform_weights": True, "file": True},
}


FUSION_MODELS = ["tdt", "rnnt"]  # tests/fixtures/models/<name>.nemo, one tokenizer
LM_ALPHA = 0.5
BOOST_ALPHA = 1.0
DECODING: dict[str, dict[str, Any]] = {
    "plain": {},
    "lm": {"lm": LM_ALPHA},
    "boost": {"boost": BOOST_ALPHA},
    "lm_boost": {"lm": LM_ALPHA, "boost": BOOST_ALPHA},
}


FUSION_CLASSES = {"lm": "NGramGPULanguageModel", "boost": "GPUBoostingTreeModel"}  # NeMo's order


# ---------------------------------------------------------------------------------------------
# ARPA files (input data)

BOS, EOS = "<s>", "</s>"


def word(token: int | str) -> str:
    return token if isinstance(token, str) else chr(token + TOKEN_OFFSET)


def arpa_text(sentences: list[list[int]], order: int, unk: bool) -> str:
    """A back-off LM of `order` over the sentences (module docstring), as ARPA text."""
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    for tokens in sentences:
        padded = [BOS, *tokens, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                gram = tuple(padded[i : i + n])
                if gram != (BOS,):
                    counts[n][gram] += 1
    total = sum(counts[1].values()) + (1 if unk else 0)
    prob: dict[tuple, float] = {gram: c / total for gram, c in counts[1].items()}
    if unk:
        prob[("<unk>",)] = 1 / total
    backoff: dict[tuple, float] = {}
    for n in range(2, order + 1):
        by_history: dict[tuple, dict[Any, int]] = defaultdict(dict)
        for gram, c in counts[n].items():
            by_history[gram[:-1]][gram[-1]] = c
        for history, following in by_history.items():
            seen = sum(following.values())
            for w, c in following.items():
                prob[(*history, w)] = (c - DISCOUNT) / seen
            left = 1 - sum(prob[(*history, w)] for w in following)
            lower = sum(backed_off(prob, backoff, (*history[1:], w)) for w in following)
            backoff[history] = left / (1 - lower) if lower < 1 else 1.0
    by_order = [
        sorted((g for g in prob if len(g) == n), key=lambda g: [word(t) for t in g])
        for n in range(1, order + 1)
    ]
    by_order[0].insert(0, (BOS,))
    lines = ["\\data\\"] + [f"ngram {n + 1}={len(grams)}" for n, grams in enumerate(by_order)]
    for n, grams in enumerate(by_order, start=1):
        lines += ["", f"\\{n}-grams:"]
        for gram in grams:
            weight = -99.0 if gram == (BOS,) else math.log10(prob[gram])
            line = f"{weight:.6f}\t" + " ".join(word(t) for t in gram)
            if gram in backoff:
                line += f"\t{math.log10(backoff[gram]):.6f}"
            elif gram == (BOS,):
                line += "\t0.0"
            lines.append(line)
    return "\n".join([*lines, "", "\\end\\", ""])


def backed_off(prob: dict, backoff: dict, gram: tuple) -> float:
    """p(w | history) with back-off, for a gram (history..., w)."""
    if gram in prob:
        return prob[gram]
    if len(gram) == 1:
        return prob.get(("<unk>",), 0.0)
    return backoff.get(gram[:-1], 1.0) * backed_off(prob, backoff, gram[1:])


# ---------------------------------------------------------------------------------------------
# NeMo's models and their answers


def model_arrays(model: NGramGPULanguageModel) -> dict[str, np.ndarray]:
    arcs = model.num_arcs
    return {
        "arcs_weights": model.arcs_weights.detach()[:arcs].numpy(),
        "from_states": model.from_states[:arcs].numpy(),
        "to_states": model.to_states[:arcs].numpy(),
        "ilabels": model.ilabels[:arcs].numpy(),
        "start_end_arcs": model.start_end_arcs.numpy(),
        "state_order": model.state_order.numpy(),
        "backoff_to_states": model.backoff_to_states.numpy(),
        "backoff_weights": model.backoff_weights.detach().numpy(),
        "final_weights": model.get_final(torch.arange(model.num_states)).detach().numpy(),
    }


# next states are stored as int16 (the models here have fewer than 32768 states)


@torch.no_grad()
def answers(model: NGramGPULanguageModel, states: torch.Tensor) -> dict[str, np.ndarray]:
    scores, next_states = model.advance(states)
    return {
        "states": states.numpy().astype(np.int32),
        "scores": scores.numpy().astype(np.float32),
        "next_states": next_states.numpy().astype(np.int16),
        "final": model.get_final(states).numpy().astype(np.float32),
    }


@torch.no_grad()
def eos_answers(model: NGramGPULanguageModel, states: torch.Tensor) -> dict[str, np.ndarray]:
    scores, next_states = model.advance(states, eos_id=EOS_ID)
    return {"states": states.numpy().astype(np.int32), "scores": scores.numpy(),
            "next_states": next_states.numpy().astype(np.int16)}  # fmt: skip


@torch.no_grad()
def walk(model: NGramGPULanguageModel, generator: torch.Generator) -> dict[str, np.ndarray]:
    """Random walks (module docstring): per step the states and NeMo's answers."""
    kinds = torch.randint(0, 3, (WALKS,), generator=generator)
    random_states = torch.randint(0, model.num_states, (WALKS,), generator=generator)
    states = torch.where(kinds == 0, model.bos_state, torch.where(kinds == 1, 0, random_states))
    steps: dict[str, list[np.ndarray]] = defaultdict(list)
    for _ in range(WALK_STEPS):
        step = answers(model, states)
        for key, value in step.items():
            steps[key].append(value)
        scores, next_states = (
            torch.from_numpy(step["scores"]),
            torch.from_numpy(step["next_states"]),
        )
        drawn = torch.multinomial(scores.exp() + 1e-12, 1, generator=generator)[:, 0]
        uniform = torch.randint(0, model.vocab_size, (WALKS,), generator=generator)
        use_uniform = torch.rand(WALKS, generator=generator) < 0.25
        labels = torch.where(use_uniform, uniform, drawn)
        states = next_states.gather(1, labels[:, None])[:, 0].long()
    return {key: np.stack(value) for key, value in steps.items()}


def depth_reached(model: NGramGPULanguageModel, visited: np.ndarray) -> int:
    return int(model.state_order[torch.from_numpy(visited.reshape(-1)).long()].max())


def make_lm(path: Path, vocab_size: int, normalize_unk: bool, generator: torch.Generator):
    model = NGramGPULanguageModel.from_arpa(
        lm_path=path, vocab_size=vocab_size, normalize_unk=normalize_unk,
        use_triton=False, token_offset=TOKEN_OFFSET,
    )  # fmt: skip
    arrays = model_arrays(model)
    walked = walk(model, generator)
    eos = eos_answers(model, torch.from_numpy(walked["states"][-1]).long())
    arrays.update({f"walk/{k}": v for k, v in walked.items()})
    arrays.update({f"eos/{k}": v for k, v in eos.items()})
    info = {
        "arpa": path.name,
        "vocab_size": vocab_size,
        "normalize_unk": normalize_unk,
        "token_offset": TOKEN_OFFSET,
        "max_order": model.max_order,
        "num_states": model.num_states,
        "num_arcs": model.num_arcs,
        "deepest_state_order_walked": depth_reached(model, walked["states"]),
        "tokens_without_unigram": int((arrays["to_states"][:vocab_size] == 0).sum()),
    }
    return arrays, info


def make_tree(name: str, settings: dict, tokenizer, staging: Path):
    settings = dict(settings)
    from_file = settings.pop("file", False)
    if from_file:  # the file form: NeMo strips each line
        (staging / f"{name}.txt").write_text("".join(f"  {p}\n" for p in PHRASES))
        phrases = {"key_phrases_file": str(staging / f"{name}.txt")}
    else:
        phrases = {"key_phrases_list": PHRASES}
    config = OmegaConf.structured(BoostingTreeModelConfig(**phrases, use_triton=False, **settings))
    model = GPUBoostingTreeModel.from_config(config, tokenizer=tokenizer)
    arrays = model_arrays(model)
    every = torch.arange(model.num_states)
    arrays.update({f"all/{k}": v for k, v in answers(model, every).items()})
    arrays.update({f"eos/{k}": v for k, v in eos_answers(model, every).items()})
    info = {
        "settings": settings,
        "phrases_from_file": from_file,
        "config": {
            **OmegaConf.to_container(config),
            **(
                {"key_phrases_file": f"{name}.txt (each phrase indented by 2 spaces)"}
                if from_file
                else {}
            ),
        },
        "vocab_size": tokenizer.vocab_size,
        "max_order": model.max_order,
        "num_states": model.num_states,
        "num_arcs": model.num_arcs,
    }
    if from_file:
        (staging / f"{name}.txt").unlink()
    return arrays, info


# ---------------------------------------------------------------------------------------------
# NeMo's greedy decoding with fusion


def set_fusion(asr: ASRModel, saved: Any, setting: dict[str, float], lm_path: Path) -> None:
    """The saved greedy decoding (`saved`, as restored: `change_decoding_strategy` stores
    each new config in the model's) with timestamps (so that TDT durations are recorded)
    and the fusion models of `setting`, as a user sets them in NeMo's decoding config."""
    cfg = fusion_config(saved, setting, lm_path, PHRASES)
    with open_dict(cfg):
        cfg.compute_timestamps = True
    asr.change_decoding_strategy(cfg, verbose=False)


def fusion_config(
    saved: Any,
    setting: dict[str, float],
    lm_path: Path,
    phrases: list[str],
    section: str = "greedy",
) -> Any:
    """A copy of a decoding config with the fusion models of `setting` ({"lm": alpha,
    "boost": alpha}) in its `section` (`greedy`, or `beam` for the beam searches), as a
    user sets them: `ngram_lm_model` with `ngram_lm_alpha`, `boosting_tree` (the phrases,
    NeMo's defaults otherwise) with `boosting_tree_alpha`."""
    cfg = copy.deepcopy(saved)
    with open_dict(cfg):
        search = cfg[section]
        if "lm" in setting:
            search.ngram_lm_model = str(lm_path)
            search.ngram_lm_alpha = setting["lm"]
        if "boost" in setting:
            search.boosting_tree = boosting_tree_config(phrases)
            search.boosting_tree_alpha = setting["boost"]
    return cfg


def boosting_tree_config(phrases: list[str]) -> Any:
    """NeMo's boosting-tree config of `phrases`, its defaults otherwise (no Triton)."""
    return OmegaConf.structured(BoostingTreeModelConfig(key_phrases_list=phrases, use_triton=False))


def padded(encoded: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder outputs (T', D) as NeMo's decoders take them: one zero-padded (B, D, T)
    batch and the lengths."""
    lengths = torch.tensor([len(e) for e in encoded])
    batch = torch.zeros(len(encoded), encoded[0].shape[1], int(lengths.max()))
    for row, e in zip(batch, encoded, strict=True):
        row[:, : len(e)] = torch.from_numpy(e).T
    return batch, lengths


@torch.no_grad()
def decode(asr: ASRModel, encoded: list[np.ndarray]) -> list[dict[str, Any]]:
    """NeMo's hypotheses for encoder outputs (T', D), as one zero-padded batch."""
    hyps = asr.decoding.rnnt_decoder_predictions_tensor(*padded(encoded), return_hypotheses=True)
    tdt = bool(asr.decoding.durations)
    return [
        {
            "ids": base.to_jsonable(hyp.y_sequence),
            "frames": base.to_jsonable(hyp.timestamp["timestep"]),
            "durations": base.to_jsonable(hyp.token_duration) if tdt else None,
        }
        for hyp in hyps
    ]


def fused_decoding(name: str, lm_path: Path) -> dict[str, Any]:
    asr = ASRModel.restore_from(str(MODEL.parent / f"{name}.nemo"), map_location="cpu").eval()
    meta = json.loads((MODEL.parent / f"{name}.json").read_text())
    with np.load(MODEL.parent / f"{name}.npz") as data:
        encoded = {clip: data[f"{Path(clip).stem}/encoder"] for clip in meta["clips"]}
    speech = {clip: base.load_clip(clip) for clip in base.SPEECH_CLIPS}
    out: dict[str, Any] = {"clips": list(encoded), "settings": {}}
    saved = copy.deepcopy(asr.cfg.decoding)
    for setting_name, setting in DECODING.items():
        set_fusion(asr, saved, setting, lm_path)
        models = asr.decoding.decoding.decoding_computer.fusion_models
        kinds = [type(model).__name__ for model in models]
        assert kinds == [k for f, k in FUSION_CLASSES.items() if f in setting], kinds
        single = {clip: decode(asr, [e])[0] for clip, e in encoded.items()}
        batched = dict(zip(encoded, decode(asr, list(encoded.values())), strict=True))
        out["settings"][setting_name] = {
            "fusion": setting,
            "clips": single,
            "batched": batched,
            "transcribe": transcribed_sequences(asr, speech),
        }
    plain = out["settings"]["plain"]["clips"]
    for clip, hyp in plain.items():  # without fusion: the model fixture's own references
        assert hyp["ids"] == meta["clips"][clip]["transducer"]["ids"], (name, clip)
    mark_differences(out["settings"])
    return out


def transcribed_sequences(asr: ASRModel, speech: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """NeMo's `transcribe` of the speech clips, batch size 1: each `y_sequence`."""
    hyps = asr.transcribe(list(speech.values()), batch_size=1, verbose=False)
    asr.eval()  # transcribe leaves the modules in training mode
    hyps = hyps[0] if isinstance(hyps, tuple) else hyps
    return {c: base.to_jsonable(h.y_sequence) for c, h in zip(speech, hyps, strict=True)}


def mark_differences(settings: dict[str, Any], transcribed: str = "ids") -> None:
    """Per setting: the clips whose ids differ from `plain`'s (`changed`), whose batched ids
    differ from their own (`batched_differences`), and whose `transcribe` sequence differs
    from their decoding's `transcribed` field (`transcribe_differences`)."""
    plain = settings["plain"]["clips"]
    for setting in settings.values():
        setting["changed"] = [c for c in plain if setting["clips"][c]["ids"] != plain[c]["ids"]]
        setting["batched_differences"] = [
            c for c in plain if setting["batched"][c]["ids"] != setting["clips"][c]["ids"]
        ]
        setting["transcribe_differences"] = [
            c
            for c, sequence in setting["transcribe"].items()
            if sequence != setting["clips"][c][transcribed]
        ]


def main() -> None:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    asr = ASRModel.restore_from(str(MODEL), map_location="cpu").eval()
    tokenizer = asr.tokenizer
    vocab_size = tokenizer.vocab_size
    lines = base.corpus_lines(random.Random(base.SEED))
    token_lines = [tokenizer.text_to_ids(line) for line in lines]
    fixture: dict[str, Any] = {
        **base.made_by(COMMAND),
        "tokenizer": {"model": "tests/fixtures/models/tdt.nemo", "vocab_size": vocab_size},
        "eos_id": EOS_ID,
        "walks": {"items": WALKS, "steps": WALK_STEPS},
        "phrases": PHRASES,
        "phrase_ids": {p: tokenizer.text_to_ids(p) for p in PHRASES},
        "models": {},
    }
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        (staging / "lm3.arpa").write_text(arpa_text(token_lines[:LM_LINES], 3, unk=True))
        (staging / "lm2.arpa").write_text(
            arpa_text(token_lines[LM_LINES : 2 * LM_LINES], 2, unk=False)
        )
        lms = {"lm3": ("lm3.arpa", True), "lm3_unnormalized": ("lm3.arpa", False),
               "lm2": ("lm2.arpa", True)}  # fmt: skip
        for name, (arpa, normalize) in lms.items():
            made, info = make_lm(staging / arpa, vocab_size, normalize, generator)
            arrays.update({f"{name}/{k}": v for k, v in made.items()})
            fixture["models"][name] = {"kind": "ngram_lm", **info}
        for name, settings in TREES.items():
            made, info = make_tree(name, settings, tokenizer, staging)
            arrays.update({f"{name}/{k}": v for k, v in made.items()})
            fixture["models"][name] = {"kind": "boosting_tree", **info}
        fixture["decoding"] = {
            "models": FUSION_MODELS,
            "lm": "lm3.arpa",
            "lm_alpha": LM_ALPHA,
            "boosting_tree": {"key_phrases_list": PHRASES, "note": "NeMo's defaults otherwise"},
            "boosting_tree_alpha": BOOST_ALPHA,
            "results": {name: fused_decoding(name, staging / "lm3.arpa") for name in FUSION_MODELS},
        }
        check(fixture)
        np.savez_compressed(staging / "fusion.npz", **arrays)
        (staging / "fusion.json").write_text(json.dumps(fixture, indent=1) + "\n")
        OUT.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            shutil.copyfile(path, OUT / path.name)
            print(f"wrote {OUT / path.name} ({path.stat().st_size / 1e6:.3f} MB)")


def check(fixture: dict[str, Any]) -> None:
    """The fixtures exercise what they are for (unknown tokens, deep states, decisions that
    fusion changes), and fit their storage (int16 states)."""
    models = fixture["models"]
    assert all(info["num_states"] < 2**15 for info in models.values())
    assert models["lm3"]["tokens_without_unigram"] > 1, "every token has a unigram"
    assert models["lm3"]["deepest_state_order_walked"] == 3, "walks stay shallow"
    assert models["lm2"]["tokens_without_unigram"] > 1
    for name, results in fixture["decoding"]["results"].items():
        for setting_name, setting in results["settings"].items():
            if setting_name != "plain":
                assert len(setting["changed"]) >= 2, f"{name} {setting_name}: fusion changes little"
            assert not setting["transcribe_differences"], (name, setting_name)


if __name__ == "__main__":
    main()
