"""NeMo Canary models configured as NVIDIA's released Canary checkpoints, and NeMo's outputs.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_canary_checkpoint_fixtures.py                  # all three
    python tests/reference/make_canary_checkpoint_fixtures.py canary-1b-v2

One fixture per Canary checkpoint family: canary-180m-flash, canary-1b-flash, canary-1b-v2.
Each model is built with NeMo's own classes from the checkpoint's published configuration
(tests/reference/configs/<checkpoint>.yaml, its sources in each file's header) with only
sizes shrunk (`SIZES`: layers, widths, heads, inner sizes, vocabularies, and the decoder's
`max_sequence_length` 1024 -> 128, which keeps `max_generation_delta` the binding length limit
for every clip); every flag is kept as published: encoder biases, xscaling, untied biases,
subsampling, convolution norm and kernel, decoder pre-LN and final norm, fixed positional
encodings, `num_token_types`, activation, the head, the whole preprocessor (dither is
training-only in NeMo), `prompt_format` and `prompt_defaults`, the tokenizer's type and
special tokens, and the decoding section (beam search of width 1, `max_generation_delta` 50).

THE COMPLETE PUBLISHED CONFIG WAS AVAILABLE FOR canary-180m-flash ONLY. For canary-1b-v2 only
the preprocessor and encoder sections were found verbatim, for canary-1b-flash only single
fields. For those two, every section is canary-180m-flash's (the family's closest complete
config), overridden by every value a source states for that checkpoint (`STATED`), and by what
follows from those (`encoder_decoder_proj` is an Identity when `asr_enc_hidden ==
lm_dec_hidden`). Each fixture's JSON says, field by field, where the value came from
(`config_sources`: published / stated with the source / derived / 180m-flash /
assumed), and what was shrunk (`shrunk`: [published, ours]).

Tokenizers, trained here with NeMo's own helpers on made-up sentences:
- flash models: NeMo's aggregate `CanaryTokenizer`, in the published `langs` order
  (`spl_tokens`, de, en, es, fr). `spl_tokens` is built as NVIDIA's canary-2 special-token
  script builds it (`CanaryTokenizer.build_special_tokenizer`: the 6 defaults, the canary2
  prompt tokens, `<|unklang|>`, the 183 ISO-639-1 language tokens, frame tokens, 16 speaker
  tokens, `<|spltokenN|>` padding to a multiple of 64), with 64 frame tokens instead of 900;
  ids 0-204 are those of the real one (`<|en|>` 62, `<|de|>` 76, ...). One 128-piece BPE model
  per language (the real ones have 1024).
- canary-1b-v2: one unified SentencePiece BPE model (`CanaryBPETokenizer`), the same special
  tokens inside as user-defined symbols (ids 0-16 as reported for the real one: `<pad>` 2,
  EOS 3, BOS 4, `<|pnc|>` 5, ...), then text pieces learnt from sentences in its 25 languages.
  ASSUMED (recorded in `config_sources`): the special list after id 20 (the real one puts
  `<|en|>` at 64, this one at 62), and that the special tokens are user-defined symbols (the
  kind NeMo's builders use; NeMo's canary2 prompt reaches them only through SentencePiece's
  `encode`, which never produces control symbols). NeMo then encodes the prompt string with
  SentencePiece, dummy prefix included: its prompt starts with a `▁` piece (10 ids).
  Supported languages: the model card's 25, not every language token of the vocabulary.
  The real `.nemo` also holds an auxiliary CTC model (`timestamps_asr_model_*`) that NeMo
  restores and uses for word timestamps (forced alignment) and whose presence changes
  `transcribe` (timestamp slot always `<|notimestamp|>`, no frame-token parsing, chunked
  single inputs). Its configuration is not published: the fixture's is a one-layer
  FastConformer CTC model on the same tokenizer (ASSUMED), added to the archive as the real one
  is, so that NeMo takes that code path.

Weights are random, with `make_canary_fixture.make_outputs_varied`'s offsets and scales so
that greedy outputs vary with the audio and the prompt; for the flash models the frame tokens
are then given back their place among the text pieces, and sentence ends a little more
(`let_frame_tokens_through`), so that their outputs carry frame tokens and NeMo's timestamp
parsing has words to find (canary-1b-v2 keeps every special token suppressed). References come from
the model restored from its `.nemo`, in eval mode.

Writes tests/fixtures/checkpoints/<checkpoint>.{nemo,npz,json} (all files or none); the keys
are in tests/reference/README.md ("Canary checkpoint fixtures").
"""

from __future__ import annotations

import copy
import json
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import make_canary_fixture as cf  # tests/reference/, on sys.path when run as a script
import make_canary_timestamps_fixture as ts
import make_checkpoint_fixtures as ckpt
import make_model_fixtures as base
import numpy as np
import sentencepiece
import torch
import yaml
from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE, EncDecMultiTaskModel
from nemo.collections.common.tokenizers.canary_tokenizer import DEFAULT_TOKENS, CanaryTokenizer
from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
from nemo.utils import AppState
from omegaconf import OmegaConf, open_dict
from sentencepiece import sentencepiece_model_pb2

CONFIGS = Path(__file__).resolve().parent / "configs"
OUT = ckpt.OUT
COMMAND = "python tests/reference/make_canary_checkpoint_fixtures.py"
SEED = base.SEED
CLIPS = cf.CLIPS  # the five speech clips
OTHER_CLIPS = ts.OTHER_CLIPS  # silence-padded, under 1 s, odd length
PROMPTS = list(cf.PROMPTS)  # en_asr_pnc, en_asr_nopnc, en_de_ast_pnc
LOGIT_CLIPS = 1  # clips whose per-step greedy logits go to the npz (all prompts)
BEAM_SIZE = 4  # n-best lists recorded besides the published beam of width 1
TUNING_DELTA = 0  # greedy max_generation_delta while the weights are tuned (not saved)
FRAME_BOOST = 2.0  # flash: frame tokens' head bias over the text pieces' (after un-suppressing)
PUNCTUATION_BOOST = 2.0  # flash: head bias added to the pieces ending in . ? !
COMPLETE = "canary-180m-flash"  # the family's one complete published config

# What is shrunk, and to what (everything else is the published value).
SIZES = {
    "encoder.n_layers": 2,
    "encoder.n_heads": 4,
    "encoder.subsampling_conv_channels": 32,
    "transf_decoder.config_dict.num_layers": 2,
    "transf_decoder.config_dict.num_attention_heads": 4,
    "transf_decoder.config_dict.max_sequence_length": 128,
    "transf_encoder.num_attention_heads": 4,
    "frame_tokens": 64,  # <|0|> .. <|63|> (900 in the real vocabularies)
    "language_vocab": 128,  # each per-language BPE model of the flash models (1024)
}

# NVIDIA's canary-2 special tokens (NeMo's scripts/speech_recognition/canary/
# build_canary_2_special_tokenizer.py): the prompt tokens, then the languages. With
# CanaryTokenizer's 6 defaults in front they give the ids listed in configs/canary-180m-flash.yaml.
CANARY2_TOKENS = [
    "<|endoftext|>", "<|startoftranscript|>", "<|nopnc|>", "<|pnc|>", "<|nospeech|>",
    "<|startofcontext|>", "<|itn|>", "<|noitn|>", "<|timestamp|>", "<|notimestamp|>",
    "<|diarize|>", "<|nodiarize|>", "<|spkchange|>", "<|audioseparator|>", "<|emo:undefined|>",
    "<|emo:neutral|>", "<|emo:happy|>", "<|emo:sad|>", "<|emo:angry|>", "<|unklang|>",
]  # fmt: skip
ISO_LANGS = """aa ab af ak sq am ar an hy as av ae ay az bm ba eu be bn bi bs br bg my ca ch ce ny
zh cu cv kw co cr hr cs da dv nl dz en eo et ee fo fj fi fr fy ff gd gl lg ka de el kl gn gu ht ha
he hz hi ho hu is io ig id ia ie iu ik ga it ja jv kn kr ks kk km ki rw ky kv kg ko kj ku lo la lv
li ln lt lu lb mk mg ms ml mt gv mi mr mh mn na nv nd nr ng ne no nb nn oc oj or om os pi ps fa pl
pt pa qu ro rm rn ru se sm sg sa sc sr sn sd si sk sl so st es su sw ss sv tl ty tg ta tt te th bo
ti to ts tn tr tk tw ug uk ur uz ve vi vo wa cy wo xh ii yi yo za zu""".split()  # noqa: SIM905
# ids in the real flash spl_tokens (configs/canary-180m-flash.yaml's header), checked
REAL_FLASH_IDS = {"<|en|>": 62, "<|fr|>": 69, "<|de|>": 76, "<|it|>": 97, "<|ru|>": 155,
                  "<|es|>": 169, "<|0|>": 205, "<|startofcontext|>": 7, "<|emo:undefined|>": 16,
                  "<|unklang|>": 21}  # fmt: skip
# canary-1b-v2's model card: ASR in all 25, AST en <-> each
V2_LANGUAGES = sorted(
    "bg hr cs da nl en et fi fr de el hu it lv lt mt pl pt ro sk sl es sv ru uk".split()  # noqa: SIM905
)
# ids reported for the real canary-1b-v2 (configs/canary-1b-v2.yaml's header), checked
REAL_V2_IDS = {"<pad>": 2, "<|endoftext|>": 3, "<|startoftranscript|>": 4, "<|pnc|>": 5,
               "<|nopnc|>": 6, "<|startofcontext|>": 7, "<|noitn|>": 9, "<|notimestamp|>": 11,
               "<|nodiarize|>": 13, "<|emo:undefined|>": 16}  # fmt: skip


SPECIAL_SOURCES = {
    "aggregate": "spl_tokens as NVIDIA's canary-2 script builds it (NeMo's scripts/speech_recognition/"
    "canary/build_canary_2_special_tokenizer.py); ids 0-205 checked against the real ones "
    "(configs/canary-180m-flash.yaml's header); 64 frame tokens instead of 900 (shrunk)",
    "unified": "assumed: the same canary-2 special list, as user-defined symbols in front of the "
    "text pieces; ids 0-16 checked against those reported for the real one (configs/"
    "canary-1b-v2.yaml's header); <|en|> is 62 here, 64 in the real one (its list is not public)",
}


def special_tokens(frames: int) -> list[str]:
    """The canary-2 special-token list with `frames` frame tokens, padded as NVIDIA's script
    pads it: `<|spltokenN|>` up to a multiple of 64 pieces (counting `<pad>`, `<unk>`, `▁`)."""
    tokens = CANARY2_TOKENS + [f"<|{c}|>" for c in ISO_LANGS]
    tokens += [f"<|{i}|>" for i in range(frames)] + [f"<|spk{i}|>" for i in range(16)]
    count = len(tokens) + 3
    tokens += [f"<|spltoken{i}|>" for i in range(-count % 64)]
    return tokens


# ---------------------------------------------------------------------------------------------
# Sources: what each checkpoint's config is made of

B = "[B] NVIDIA-NeMo/.github blog granary_data_for_fine-tune (canary-1b-flash architecture)"
S = "[S] k2-fsa/sherpa-onnx scripts/nemo/canary/export_onnx_1b_flash.py (asserts on the cfg)"
NB = "garayco/canary-1b-v2-analysis canary-1b-v2.ipynb: print(model) module tree"
HF = "huggingface/transformers CanaryDecoderConfig defaults for canary-1b-v2 (PR #46825)"


@dataclass(frozen=True)
class Checkpoint:
    tokenizer: str  # "aggregate" (CanaryTokenizer) or "unified" (CanaryBPETokenizer)
    enc_d_model: int  # shrunk widths (the published ones: 512/1024, 1024/1024, 1024/1024)
    dec_hidden: int
    frame_tokens_live: bool  # the decoder writes timestamps (flash)
    timestamps_model: bool  # canary-1b-v2's auxiliary CTC aligner
    seed: int = SEED  # torch's, for the weights (one that leaves every greedy argmax clear)
    stated: tuple[tuple[str, Any, str], ...] = ()  # (field, value, source) over the base config


CHECKPOINTS: dict[str, Checkpoint] = {
    "canary-180m-flash": Checkpoint(
        tokenizer="aggregate",
        enc_d_model=32,
        dec_hidden=64,
        frame_tokens_live=True,
        timestamps_model=False,
    ),
    "canary-1b-flash": Checkpoint(
        tokenizer="aggregate",
        enc_d_model=48,
        dec_hidden=48,
        frame_tokens_live=True,
        timestamps_model=False,
        seed=1,  # seed 0: two greedy steps within 1e-4 of a tie
        stated=(
            ("encoder.d_model", 1024, f"derived: model_defaults.asr_enc_hidden ({B})"),
            (
                "transf_decoder.config_dict.hidden_size",
                1024,
                f"derived: model_defaults.lm_dec_hidden ({B})",
            ),
            ("head.hidden_size", 1024, f"derived: model_defaults.lm_dec_hidden ({B})"),
            (
                "tokenizer",
                "aggregate CanaryTokenizer, 5248 ids",
                f"{S} (vocab 5248); huggingface/transformers#37098 (aggregate); layout inferred "
                "from canary-180m-flash (same total)",
            ),
            (
                "prompt_format",
                "canary2",
                "handy-computer/transcribe.cpp reports/porting/canary/forward-map.md (secondary)",
            ),
        ),
    ),
    "canary-1b-v2": Checkpoint(
        tokenizer="unified",
        enc_d_model=48,
        dec_hidden=48,
        frame_tokens_live=False,
        timestamps_model=True,
        stated=(
            ("model_defaults.asr_enc_hidden", 1024, f"{NB}: encoder d 1024"),
            (
                "model_defaults.lm_dec_hidden",
                1024,
                f"{NB}: decoder d 1024, encoder_decoder_proj Identity",
            ),
            ("model_defaults.lm_enc_hidden", 1024, "assumed: lm_dec_hidden (as in 180m-flash)"),
            ("transf_decoder.config_dict.num_layers", 8, f"{NB}: 8 TransformerDecoderBlocks; {HF}"),
            ("transf_decoder.config_dict.hidden_size", 1024, f"{NB}; {HF}"),
            ("transf_decoder.config_dict.inner_size", 4096, f"{NB}: dense_in 1024->4096; {HF}"),
            ("transf_decoder.config_dict.num_attention_heads", 8, HF),
            ("transf_decoder.config_dict.hidden_act", "relu", HF),
            ("transf_decoder.config_dict.max_sequence_length", 1024, HF),
            (
                "transf_decoder.config_dict.learn_positional_encodings",
                False,
                f"{NB}: FixedPositionalEncoding",
            ),
            ("transf_decoder.config_dict.pre_ln", True, f"{NB}: final_layer_norm present"),
            ("transf_decoder.pre_ln_final_layer_norm", True, f"{NB}: final_layer_norm present"),
            ("transf_decoder.config_dict.embedding_dropout", 0.1, f"{NB}; {HF}"),
            ("transf_decoder.config_dict.attn_score_dropout", 0.1, f"{NB}; {HF}"),
            ("transf_decoder.config_dict.ffn_dropout", 0.1, f"{NB}; {HF}"),
            ("transf_encoder.num_layers", 0, f"{NB}: no transf_encoder module"),
            ("head.num_layers", 1, f"{NB}: TokenClassifier, one Linear(1024, 16384, bias=True)"),
            ("head.hidden_size", 1024, NB),
            ("head.dropout", 0.0, NB),
            (
                "prompt_format",
                "canary2",
                "configs/canary-1b-v2.yaml train_ds/validation_ds (verbatim)",
            ),
            (
                "tokenizer",
                "unified CanaryBPETokenizer, 16384 pieces",
                f"{NB}: NeMo log 'Tokenizer CanaryBPETokenizer initialized with 16384 tokens'; "
                "transformers' converter reads tokenizer.model_path",
            ),
            (
                "timestamps_asr_model",
                "auxiliary EncDecCTCModelBPE in the .nemo",
                f"{NB}: NeMo log 'Model EncDecCTCModelBPE was successfully restored from "
                ".../canary-1b-v2.nemo'; configuration assumed",
            ),
        ),
    ),
}
SECTIONS = ("sample_rate", "label_smoothing", "log_prediction", "use_loss_mask_for_prompt",
            "prompt_format", "prompt_defaults", "model_defaults", "preprocessor", "encoder",
            "transf_encoder", "transf_decoder", "head", "loss", "decoding", "spec_augment",
            "target", "tokenizer")  # fmt: skip


def read_config(name: str) -> dict[str, Any]:
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    return config.get("model", config)


def leaves(node: Any, path: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf (lists are leaves)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(leaves(value, f"{path}.{key}" if path else key))
        return out
    return {path: node}


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def get_path(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        node = node[key]
    return node


def published_config(name: str, spec: Checkpoint) -> tuple[dict[str, Any], dict[str, str]]:
    """The checkpoint's config before shrinking, and the source of each of its fields."""
    own = {k: v for k, v in read_config(name).items() if k in SECTIONS}
    own_file = f"published (configs/{name}.yaml)"
    if name == COMPLETE:
        return copy.deepcopy(own), dict.fromkeys(leaves(own), own_file)
    config = {k: v for k, v in read_config(COMPLETE).items() if k in SECTIONS}
    config = copy.deepcopy(config)
    sources = dict.fromkeys(
        leaves(config), f"{COMPLETE} (closest complete config; not published for this checkpoint)"
    )
    for section, value in own.items():  # the checkpoint's own verbatim fields win
        if isinstance(value, dict) and isinstance(config.get(section), dict):
            for path, leaf in leaves(value, section).items():
                set_path(config, path, leaf)
                sources[path] = own_file
        else:
            config[section] = copy.deepcopy(value)
            sources[section] = own_file
    for path, value, source in spec.stated:
        if path in ("tokenizer", "timestamps_asr_model"):  # built below
            sources[path] = f"stated: {source}"
            continue
        set_path(config, path, value)
        sources[path] = (
            f"stated: {source}" if not source.startswith(("derived", "assumed")) else source
        )
    return config, sources


def final_sources(config: dict[str, Any], sources: dict[str, str], name: str) -> dict[str, str]:
    """The source of every field of the config as built (sizes are in `shrunk`); the
    tokenizer's fields are ours, its type and special tokens as stated."""
    out = {}
    for path in leaves(config):
        if path.startswith("tokenizer."):
            continue
        out[path] = sources.get(path, "assumed")
    out["tokenizer"] = sources.get("tokenizer", f"published (configs/{name}.yaml): type and layout")
    out["tokenizer pieces"] = "trained here on made-up sentences (the real models are not public)"
    if sources.get("tokenizer special tokens"):
        out["tokenizer special tokens"] = sources["tokenizer special tokens"]
    for key in ("timestamps_asr_model",):
        if key in sources:
            out[key] = sources[key]
    return out


def shrink(config: dict[str, Any], spec: Checkpoint) -> dict[str, list[Any]]:
    """Only sizes change; returns {field: [published, ours]}."""
    shrunk: dict[str, list[Any]] = {}
    enc, dec = spec.enc_d_model, spec.dec_hidden
    sizes = {
        **{k: v for k, v in SIZES.items() if "." in k},
        "encoder.d_model": enc,
        "model_defaults.asr_enc_hidden": enc,
        "model_defaults.lm_dec_hidden": dec,
        "model_defaults.lm_enc_hidden": dec,
        "transf_decoder.config_dict.hidden_size": dec,
        "transf_decoder.config_dict.inner_size": 4 * dec,
        "transf_encoder.hidden_size": dec,
        "transf_encoder.inner_size": 4 * dec,
        "head.hidden_size": dec,
    }
    for path, value in sizes.items():
        try:
            old = get_path(config, path)
        except KeyError:
            continue
        if old != value:
            shrunk[path] = [old, value]
            set_path(config, path, value)
    return shrunk


# ---------------------------------------------------------------------------------------------
# Tokenizers

_LANGUAGE_TEXT = {
    "es": (
        """el la los las rápido zorro marrón salta sobre perro perezoso siete marineros cansados
        contaron cuarenta pájaros al mediodía por favor llama a stella pídele que traiga estas
        cosas novecientas doce personas votaron martes una brisa cálida sopló puerto tranquilo
        uno dos tres cuatro cinco seis ocho diez mañana tarde río casa pequeña luz verde barco
        norte sur estación""",
        ["El", "La", "Por", "Siete", "Nueve", "Stella", "Una", "Diez", "¿Dónde", "¡Qué"],
        [
            "El rápido zorro marrón salta sobre el perro perezoso.",
            "Siete marineros cansados contaron cuarenta pájaros al mediodía.",
            "Por favor, llama a Stella y pídele que traiga estas cosas.",
            "Novecientas doce personas votaron el martes.",
            "Una brisa cálida sopló sobre el puerto tranquilo.",
        ],
    ),
    "fr": (
        """le la les rapide renard brun saute par dessus chien paresseux sept marins fatigués
        ont compté quarante oiseaux à midi appelle stella et demande lui apporter ces choses
        neuf cent douze personnes voté mardi une brise chaude soufflait sur port tranquille un
        deux trois quatre cinq six huit dix matin soir rivière petite maison lumière verte bateau
        nord sud gare""",
        ["Le", "La", "Sept", "Neuf", "Stella", "Une", "Dix", "Où", "Quelle"],
        [
            "Le renard brun rapide saute par-dessus le chien paresseux.",
            "Sept marins fatigués ont compté quarante oiseaux à midi.",
            "S'il te plaît, appelle Stella et demande-lui d'apporter ces choses.",
            "Neuf cent douze personnes ont voté mardi.",
            "Une brise chaude soufflait sur le port tranquille.",
        ],
    ),
}
# "Seven tired sailors counted forty birds at noon." in canary-1b-v2's other languages
_V2_SENTENCES = {
    "bg": "Седем уморени моряци преброиха четиридесет птици по обед.",
    "hr": "Sedam umornih mornara izbrojilo je četrdeset ptica u podne.",
    "cs": "Sedm unavených námořníků napočítalo v poledne čtyřicet ptáků.",
    "da": "Syv trætte sømænd talte fyrre fugle ved middagstid.",
    "nl": "Zeven vermoeide zeilers telden veertig vogels om twaalf uur.",
    "et": "Seitse väsinud meremeest lugesid keskpäeval nelikümmend lindu.",
    "fi": "Seitsemän väsynyttä merimiestä laski neljäkymmentä lintua keskipäivällä.",
    "el": "Επτά κουρασμένοι ναύτες μέτρησαν σαράντα πουλιά το μεσημέρι.",
    "hu": "Hét fáradt tengerész negyven madarat számolt délben.",
    "it": "Sette marinai stanchi contarono quaranta uccelli a mezzogiorno.",
    "lv": "Septiņi noguruši jūrnieki pusdienlaikā saskaitīja četrdesmit putnus.",
    "lt": "Septyni pavargę jūreiviai vidurdienį suskaičiavo keturiasdešimt paukščių.",
    "mt": "Sebgħa baħrin għajjenin għaddew erbgħin għasfur f'nofsinhar.",
    "pl": "Siedmiu zmęczonych marynarzy policzyło w południe czterdzieści ptaków.",
    "pt": "Sete marinheiros cansados contaram quarenta pássaros ao meio-dia.",
    "ro": "Șapte marinari obosiți au numărat patruzeci de păsări la prânz.",
    "sk": "Sedem unavených námorníkov napočítalo na poludnie štyridsať vtákov.",
    "sl": "Sedem utrujenih mornarjev je opoldne preštelo štirideset ptic.",
    "sv": "Sju trötta sjömän räknade fyrtio fåglar vid middagstid.",
    "ru": "Семь усталых моряков насчитали сорок птиц в полдень.",
    "uk": "Сім утомлених моряків нарахували сорок птахів опівдні.",
}


def language_lines(lang: str, rng: random.Random, count: int = 400) -> list[str]:
    """Made-up cased, punctuated sentences in `lang` (en, de: the Canary fixture's)."""
    if lang == "en":
        return base.corpus_lines(rng)
    if lang == "de":
        return cf.german_lines(rng)
    words, first, clips = _LANGUAGE_TEXT[lang]
    words = words.split()
    lines = list(clips)
    for _ in range(count):
        sentence = [rng.choice(first)] + [rng.choice(words) for _ in range(rng.randint(3, 10))]
        if len(sentence) > 5 and rng.random() < 0.4:
            sentence[rng.randint(2, len(sentence) - 2)] += ","
        end = "?" if sentence[0].startswith("¿") else "!" if sentence[0].startswith("¡") else None
        lines.append(" ".join(sentence) + (end or rng.choice([".", ".", ".", "?", "!"])))
    return lines


def _trained(directory: Path, build) -> None:
    """Run a SentencePiece build in `directory` on relative paths, seeded (byte-identical)."""
    directory.mkdir(parents=True, exist_ok=True)
    sentencepiece.set_random_generator_seed(SEED)
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        build()
    finally:
        os.chdir(cwd)


def aggregate_tokenizer(directory: Path, published: dict[str, Any]) -> dict[str, Any]:
    """spl_tokens + one BPE model per language, in the published `langs` order."""
    order = list(published["tokenizer"]["langs"])
    assert order[0] == "spl_tokens", order

    def build() -> None:
        CanaryTokenizer.build_special_tokenizer(special_tokens(SIZES["frame_tokens"]), "spl_tokens")
        for i, lang in enumerate(order[1:]):
            Path(lang).mkdir()
            lines = language_lines(lang, random.Random(SEED + i))
            Path(lang, "corpus.txt").write_text("\n".join(lines) + "\n")
            create_spt_model(f"{lang}/corpus.txt", vocab_size=SIZES["language_vocab"], sample_size=-1,
                             do_lower_case=False, tokenizer_type="bpe", output_dir=lang)  # fmt: skip

    _trained(directory, build)
    return {
        "dir": None,
        "type": "agg",
        "langs": {lang: {"dir": str(directory / lang), "type": "bpe"} for lang in order},
        "custom_tokenizer": copy.deepcopy(published["tokenizer"]["custom_tokenizer"]),
    }


def unified_tokenizer(directory: Path) -> dict[str, Any]:
    """One BPE model over canary-1b-v2's 25 languages, the special tokens user-defined."""
    rng = random.Random(SEED)
    lines = base.corpus_lines(rng) + cf.german_lines(rng)
    lines += language_lines("es", rng) + language_lines("fr", rng)
    lines += [s for s in _V2_SENTENCES.values() for _ in range(20)]
    specials = list(dict.fromkeys(DEFAULT_TOKENS + special_tokens(SIZES["frame_tokens"])))

    def build() -> None:
        Path("corpus.txt").write_text("\n".join(lines) + "\n")
        create_spt_model("corpus.txt", vocab_size=len(specials) + 1 + 640, sample_size=-1,
                         do_lower_case=False, tokenizer_type="bpe", output_dir=".",
                         user_defined_symbols=specials)  # fmt: skip

    _trained(directory, build)
    return {
        "dir": str(directory),
        "type": "bpe",
        "custom_tokenizer": {
            "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryBPETokenizer"
        },
    }


def tokenizer_files(config: dict[str, Any]) -> dict[str, Path]:
    if config["type"] == "agg":
        return {k: Path(v["dir"]) / "tokenizer.model" for k, v in config["langs"].items()}
    return {"unified": Path(config["dir"]) / "tokenizer.model"}


# ---------------------------------------------------------------------------------------------
# canary-1b-v2's auxiliary CTC aligner


def timestamps_model(config: dict[str, Any], tokenizer: dict[str, Any]) -> EncDecCTCModelBPE:
    """A tiny EncDecCTCModelBPE on the same tokenizer (plain SentencePiece, as NeMo's log of
    the real one shows); its configuration is assumed: the v2 preprocessor and encoder, one
    layer of width 32, and a ConvASRDecoder."""
    encoder = {**copy.deepcopy(config["encoder"]), "n_layers": 1, "d_model": 32, "n_heads": 2,
               "subsampling_conv_channels": 16}  # fmt: skip
    cfg = {
        "sample_rate": 16000,
        "tokenizer": {"dir": tokenizer["dir"], "type": "bpe"},
        "preprocessor": copy.deepcopy(config["preprocessor"]),
        "encoder": encoder,
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 32,
            "num_classes": -1,
            "vocabulary": [],
        },
        "decoding": {"strategy": "greedy_batch"},
        "optim": None,
    }
    torch.manual_seed(SEED + 1)
    return EncDecCTCModelBPE(cfg=OmegaConf.create(cfg)).eval()


def add_timestamps_model(path: Path, aligner: EncDecCTCModelBPE, work: Path) -> list[str]:
    """Put the aligner into the .nemo as NVIDIA's is: timestamps_asr_model_config.yaml,
    timestamps_asr_model_weights.ckpt, and its tokenizer files beside the main model's."""
    saved = work / "aligner.nemo"
    aligner.save_to(str(saved))
    added = []
    with tarfile.open(saved) as source, tarfile.open(path, "a") as target:
        for member in source.getmembers():
            if not member.isfile():
                continue
            name = Path(member.name).name
            name = {"model_config.yaml": "timestamps_asr_model_config.yaml",
                    "model_weights.ckpt": "timestamps_asr_model_weights.ckpt"}.get(name, name)  # fmt: skip
            data = source.extractfile(member)
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mtime, info.mode = member.size, member.mtime, member.mode
            target.addfile(info, data)
            added.append(name)
    return sorted(added)


# ---------------------------------------------------------------------------------------------
# The flash models' timestamps


@torch.no_grad()
def let_frame_tokens_through(model: EncDecMultiTaskModel) -> dict[str, Any]:
    """Give the frame tokens back the head bias `make_outputs_varied` took from every special
    token (`SUPPRESS`), plus FRAME_BOOST, so that the outputs carry them; and raise the text
    pieces that end a sentence (`.`, `?`, `!` last) by PUNCTUATION_BOOST, so that some of the
    words NeMo's parser finds end a segment (the same values as the Canary timestamps fixture
    give 52 words, none ending a segment, with 64 frame tokens among 512 text pieces)."""
    bias = model.log_softmax.mlp.layer0.bias
    frames = ts.frame_token_ids(model)
    bias[frames] += cf.SUPPRESS + FRAME_BOOST
    tok = model.tokenizer
    ends = [
        tok.token_id_offset[lang] + i
        for lang, sub in tok.tokenizers_dict.items()
        if lang != "spl_tokens"
        for i, piece in enumerate(sub.vocab)
        if piece[-1:] in ".?!"
    ]
    bias[ends] += PUNCTUATION_BOOST
    return {
        "frame_tokens": [min(frames), max(frames)],
        "frame_token_bias_added": cf.SUPPRESS + FRAME_BOOST,
        "sentence_end_pieces": ends,
        "sentence_end_bias_added": PUNCTUATION_BOOST,
    }


# ---------------------------------------------------------------------------------------------
# Layout records


def tokenizer_layout(model: EncDecMultiTaskModel, spec: Checkpoint) -> dict[str, Any]:
    tok = model.tokenizer
    if spec.tokenizer == "aggregate":
        special = dict(sorted(tok.special_tokens.items(), key=lambda kv: kv[1]))
        sub = {
            lang: {"offset": tok.token_id_offset[lang], "vocab_size": len(t.vocab),
                   "unk_piece_id": t.tokenizer.unk_id()}
            for lang, t in tok.tokenizers_dict.items()
        }  # fmt: skip
        languages = [lang for lang in tok.langs if lang != "spl_tokens"]
        kinds = None
    else:
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(tok.tokenizer.serialized_model_proto())
        types = sentencepiece_model_pb2.ModelProto.SentencePiece.Type
        kinds = {
            name.lower(): [i for i, p in enumerate(proto.pieces) if p.type == types.Value(name)]
            for name in ("UNKNOWN", "CONTROL", "USER_DEFINED")
        }
        special = {proto.pieces[i].piece: i for ids in kinds.values() for i in ids}
        special = dict(sorted(special.items(), key=lambda kv: kv[1]))
        sub = None
        languages = V2_LANGUAGES
    vocabulary = (
        list(tok.vocab) if spec.tokenizer == "aggregate"
        else [tok.tokenizer.id_to_piece(i) for i in range(tok.vocab_size)]
    )  # fmt: skip
    language_tokens = {p[2:-2]: i for p, i in special.items() if p[2:-2] in ISO_LANGS}
    return {
        "class": f"{type(tok).__module__}.{type(tok).__name__}",
        "kind": spec.tokenizer,
        "vocab_size": tok.vocab_size,
        "decoder_vocab_size": model.log_softmax.mlp.layer0.weight.shape[0],
        "sub_tokenizers": sub,
        "piece_kinds": kinds,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "pad_id": tok.pad_id,
        "special_tokens": special,
        "supported_languages": sorted(languages),
        "language_tokens_in_vocabulary": language_tokens,
        "frame_tokens": [i for p, i in special.items() if p[2:-2].isdigit()],
        "vocabulary": vocabulary,
    }


def tokenizer_examples(model: EncDecMultiTaskModel, spec: Checkpoint) -> dict[str, Any]:
    """NeMo's encode (per language) and `ids_to_text` on a few strings and id lists."""
    tok = model.tokenizer
    texts = {
        "en": ["The quick brown fox, please!", "Tuesday? Nine hundred.", "zebra Xylophone"],
        "de": ["Der schnelle Fuchs, bitte!", "Über die Straße?"],
        "es": ["¿Dónde está Stella?", "¡Siete marineros!"],
        "fr": ["Le renard, s'il te plaît.", "Où est la gare ?"],
    }
    encode = []
    for lang, items in texts.items():
        for text in items:
            ids = (
                tok.text_to_ids(text, lang)
                if spec.tokenizer == "aggregate"
                else tok.text_to_ids(text)
            )
            encode.append(
                {"lang": lang, "text": text, "ids": ids, "ids_to_text": tok.ids_to_text(ids)}
            )
    if spec.tokenizer == "aggregate":
        en, de = tok.token_id_offset["en"], tok.token_id_offset["de"]
        text_ids = [en + 1, en + 2, en + 3, de + 4, de + 5]
        unk = [en, de, 0]
    else:
        text_ids = tok.text_to_ids("Seven tired sailors.")
        unk = [0, *text_ids[:2], 0]
    if spec.tokenizer == "aggregate":
        s = tok.special_tokens
    else:
        s = {tok.tokenizer.id_to_piece(i): i for i in range(tok.vocab_size)}
    id_lists = [
        text_ids,
        [tok.bos_id, *text_ids[:3], tok.eos_id],
        unk,
        [s["<|en|>"], *text_ids[:2], s["<|7|>"], *text_ids[2:4], s["<|12|>"]],
        [*text_ids[:2], tok.pad_id, s["<|nospeech|>"]],
    ]
    decode = [{"ids": ids, "ids_to_text": tok.ids_to_text(ids)} for ids in id_lists]
    return {"encode": encode, "decode": decode}


# ---------------------------------------------------------------------------------------------
# References


def saved_decoding(model: EncDecMultiTaskModel) -> dict[str, Any]:
    return OmegaConf.to_container(model.cfg.decoding, resolve=True)


def restore_decoding(model: EncDecMultiTaskModel, decoding: dict[str, Any]) -> None:
    model.change_decoding_strategy(OmegaConf.create(decoding))


def transcribe_run(
    model: EncDecMultiTaskModel,
    signals: list[np.ndarray],
    clips: list[str],
    prompt: str,
    batch_size: int,
    timestamps: bool,
) -> tuple[dict[str, Any], list[list[int]]]:
    """`transcribe(..., timestamps=...)`: per clip ids, raw text, text, word / segment times.

    With an aligner (canary-1b-v2) and batch size 1, NeMo "chunks" the input and merges the
    hypotheses of each input id, and every numpy input has the id `audio_0`: a list of clips
    comes back as one hypothesis (`aligner_merges_numpy_inputs`). Each clip goes alone then.
    """
    groups = [signals]
    if batch_size == 1 and model.timestamps_asr_model is not None:
        groups = [[x] for x in signals]
    hyps, used = [], []
    for group in groups:
        with cf.capture_prompts(model) as calls:
            hyps += model.transcribe(group, batch_size=batch_size, return_hypotheses=True,
                                     verbose=False, timestamps=timestamps, **ts.PROMPTS[prompt])  # fmt: skip
        model.eval()  # `transcribe` leaves the decoder in training mode
        used += [row.tolist() for call in calls for row in call]
    return {c: ts.record(model, h) for c, h in zip(clips, hyps, strict=True)}, used


def aligner_merges_numpy_inputs(model: EncDecMultiTaskModel, signals: list[np.ndarray]) -> dict:
    """NeMo 3.0.0 with an aligner: `transcribe(list of arrays, batch_size=1)` merges them."""
    hyps = model.transcribe(signals, batch_size=1, return_hypotheses=True, verbose=False,
                            timestamps=False, **ts.PROMPTS["en_asr_pnc"])  # fmt: skip
    model.eval()
    return {"inputs": len(signals), "hypotheses": len(hyps), "text": [h.text for h in hyps]}


def caps_of(model: EncDecMultiTaskModel, prompt_len: int, clips: dict[str, Any]) -> dict[str, int]:
    return {c: cf.generation_cap(model, prompt_len, v["encoded_length"]) for c, v in clips.items()}


@torch.no_grad()
def references(
    model: EncDecMultiTaskModel, signals: dict[str, np.ndarray], spec: Checkpoint
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, clips, states = cf.clip_encodings(model, signals, CLIPS, feature_clips=1)
    published = saved_decoding(model)
    listed = [signals[c] for c in CLIPS]
    meta: dict[str, Any] = {"clips": clips, "saved_decoding": published}

    # the decoding object, greedy (NeMo's greedy settings as restored), one clip at a time
    cf.set_decoding(model, "greedy")
    prompts: dict[str, Any] = {}
    greedy: dict[str, dict[str, Any]] = {}
    teacher_diff, logits_all = 0.0, []
    for prompt in PROMPTS:
        ids = cf.prompt_ids(model, cf.prompt_slots(model, prompt))
        prompts[prompt] = {
            "transcribe_kwargs": cf.transcribe_kwargs(model, prompt),
            "ids": ids.tolist(),
            "pieces": model.tokenizer.ids_to_tokens(ids.tolist()),
        }
        caps = caps_of(model, len(ids), clips)
        greedy[prompt] = {}
        for i, clip in enumerate(CLIPS):
            hyp, logits, _ = cf.greedy_single(model, states[clip], ids)
            hyp |= {"steps": len(logits), "cap": caps[clip],
                    "ended_with_eos": int(logits[-1].argmax()) == model.tokenizer.eos_id}  # fmt: skip
            greedy[prompt][clip] = hyp
            logits_all.append(logits.numpy())
            if i < LOGIT_CLIPS:
                arrays[f"greedy_logits/{prompt}/{Path(clip).stem}"] = logits.numpy()
                forced = cf.teacher_forced_logits(model, states[clip], ids, hyp["ids"])
                teacher_diff = max(
                    teacher_diff, float((forced[: len(logits)] - logits).abs().max())
                )
    meta |= {"prompts": prompts, "greedy": greedy}
    meta["greedy_settings"] = {"max_generation_delta": model.decoding.decoding.greedy_search.max_delta_len,
                               "max_sequence_length": model.decoding.decoding.greedy_search.max_seq_length}  # fmt: skip
    meta["greedy_teacher_forced_max_abs_logit_diff"] = teacher_diff
    meta["transcribe_greedy"] = {}
    for prompt in PROMPTS:
        hyps, used = transcribe_run(model, listed, CLIPS, prompt, 1, False)
        assert all(u == prompts[prompt]["ids"] for u in used), (used, prompts[prompt])
        meta["transcribe_greedy"][prompt] = hyps

    # n-best lists, beam 4, length penalty 0 (the decoding object, one clip at a time)
    cf.set_decoding(model, "beam", beam_size=BEAM_SIZE, return_best_hypothesis=False)
    generator = model.decoding.decoding.beam_search
    nbest: dict[str, Any] = {}
    for prompt in PROMPTS:
        ids = torch.tensor(prompts[prompt]["ids"])
        nbest[prompt] = {}
        for clip in CLIPS:
            st = states[clip]
            (hyps,) = model.decoding.decode_predictions_tensor(
                encoder_hidden_states=st["states"], encoder_input_mask=st["mask"],
                decoder_input_ids=ids[None], return_hypotheses=True,
            )  # fmt: skip
            model.eval()
            nbest[prompt][clip] = [cf.hyp_record(h, score=True) for h in hyps]
    meta["beam"] = {
        "settings": {"beam_size": generator.beam_size, "length_penalty_used": generator.len_pen,
                     "max_generation_delta": generator.max_delta_len},
        "nbest": nbest,
    }  # fmt: skip

    # transcribe with the saved (published) decoding: what `transcribe` does by default
    restore_decoding(model, published)
    for key, batch in (("transcribe", 1), ("transcribe_batched", len(CLIPS))):
        meta[key] = {}
        for prompt in PROMPTS:
            meta[key][prompt], used = transcribe_run(model, listed, CLIPS, prompt, batch, False)
            assert all(u == prompts[prompt]["ids"] for u in used), (used, prompts[prompt])
    meta["transcribe_batched_differences"] = cf.differences(
        meta["transcribe"], meta["transcribe_batched"]
    )
    others = [signals[c] for c in OTHER_CLIPS]
    meta["transcribe_other_clips"], _ = transcribe_run(
        model, others, OTHER_CLIPS, "en_asr_pnc", 1, False
    )
    for clip, signal, frames in zip(
        OTHER_CLIPS, others, ts.encoded_lengths(model, others), strict=True
    ):
        meta["transcribe_other_clips"][clip] |= {
            "num_samples": len(signal),
            "encoded_length": frames,
        }

    # timestamps=True: the flash models' decoder writes frame tokens, parsed by NeMo;
    # canary-1b-v2's NeMo runs its CTC aligner instead (forced alignment, prompt unchanged)
    meta["transcribe_timestamps"], meta["timestamps_prompts"] = {}, {}
    for prompt in PROMPTS:
        hyps, used = transcribe_run(model, listed, CLIPS, prompt, 1, True)
        meta["transcribe_timestamps"][prompt] = hyps
        meta["timestamps_prompts"][prompt] = {
            "ids": used[0],
            "pieces": model.tokenizer.ids_to_tokens(used[0]),
        }
    if model.timestamps_asr_model is not None:
        meta["aligner_merges_numpy_inputs"] = aligner_merges_numpy_inputs(model, listed)
    meta["timestamps"] = {
        "source": "external CTC aligner (timestamps_asr_model)" if spec.timestamps_model
        else "decoder frame tokens <|n|>, parsed by process_aed_timestamp_outputs",
        "frame_seconds": model.cfg.preprocessor.window_stride * model.cfg.encoder.subsampling_factor,
        "timestamps_asr_model_restored": model.timestamps_asr_model is not None,
    }  # fmt: skip

    hyps = [h for per in greedy.values() for h in per.values()]
    frame_ids = set(tokenizer_layout(model, spec)["frame_tokens"])
    top2 = [np.sort(lg, -1)[:, -2:] for lg in logits_all]
    meta["stats"] = {
        "greedy_tokens_per_output": {
            p: [len(h["ids"]) for h in c.values()] for p, c in greedy.items()
        },
        "greedy_outputs_ending_at_cap": sum(not h["ended_with_eos"] for h in hyps),
        "greedy_distinct_ids": len({t for h in hyps for t in h["ids"]}),
        "greedy_distinct_sequences": len({tuple(h["ids"]) for h in hyps}),
        "greedy_outputs": len(hyps),
        "greedy_outputs_with_frame_tokens": sum(bool(frame_ids & set(h["ids"])) for h in hyps),
        "min_top2_logit_gap": float(min((t[:, 1] - t[:, 0]).min() for t in top2)),
        "beam_best_differs_from_nbest_first": None,
        "transcribe_differs_from_greedy": sum(
            meta["transcribe"][p][c]["ids"] != greedy[p][c]["ids"] for p in PROMPTS for c in CLIPS
        ),
        "nbest_first_differs_from_greedy": sum(
            nbest[p][c][0]["ids"] != greedy[p][c]["ids"] for p in PROMPTS for c in CLIPS
        ),
        "timestamps": ts.stats({"transcribe_timestamps": meta["transcribe_timestamps"]}),
    }
    del meta["stats"]["beam_best_differs_from_nbest_first"]
    return arrays, meta


def check(meta: dict[str, Any], spec: Checkpoint) -> None:
    s = meta["stats"]
    assert s["greedy_distinct_sequences"] == s["greedy_outputs"], s
    assert s["greedy_distinct_ids"] >= 30, s
    assert s["min_top2_logit_gap"] > 5e-4, s  # every greedy argmax clear of rounding
    assert s["greedy_outputs_ending_at_cap"] < s["greedy_outputs"] // 2, s
    specials = set(meta["tokenizer"]["special_tokens"].values()) - {meta["tokenizer"]["eos_id"]}
    frames = set(meta["tokenizer"]["frame_tokens"])
    allowed = frames if spec.frame_tokens_live else set()
    for per_clip in meta["greedy"].values():
        for h in per_clip.values():
            assert not (specials - allowed) & set(h["ids"]), h
            assert max(h["ids"]) < meta["tokenizer"]["vocab_size"], h
    if spec.frame_tokens_live:
        assert s["greedy_outputs_with_frame_tokens"] >= s["greedy_outputs"] // 2, s
        t = s["timestamps"]  # NeMo's parser had words, empty pairs and sentence ends to parse
        assert t["outputs_with_words"] >= t["outputs"] // 2, t
        assert t["words"] >= 15, t
        assert t["empty_pairs_skipped"] >= 1, t
        assert t["words_ending_a_segment"] >= 1, t
        assert t["distinct_start_offsets"] >= 6, t
    else:
        assert s["greedy_outputs_with_frame_tokens"] == 0, s
    assert meta["timestamps"]["timestamps_asr_model_restored"] == spec.timestamps_model


# ---------------------------------------------------------------------------------------------


def make_fixture(name: str, spec: Checkpoint, signals: dict[str, np.ndarray], work: Path,
                 staging: Path) -> None:  # fmt: skip
    config, sources = published_config(name, spec)
    published = copy.deepcopy(config)
    shrunk = shrink(config, spec)
    tok_dir = work / name / "tokenizer"
    if spec.tokenizer == "aggregate":
        config["tokenizer"] = aggregate_tokenizer(tok_dir, published)
    else:
        config["tokenizer"] = unified_tokenizer(tok_dir)
    sources["tokenizer special tokens"] = SPECIAL_SOURCES[spec.tokenizer]
    shrunk["head.num_classes"] = [config["head"]["num_classes"], None]  # NeMo: 8 * ceil(V / 8)
    config["head"]["num_classes"] = None
    sources = final_sources(config, sources, name)
    config["optim"] = None
    # NeMo 3.0.0: a new EncDecMultiTaskModel after a `restore_from` in the same process looks
    # for an aligner in the last restored archive's (deleted) folder and fails; forget it
    AppState().model_restore_path = None
    torch.manual_seed(spec.seed)
    model = EncDecMultiTaskModel(cfg=OmegaConf.create(config)).eval()
    decoding = saved_decoding(model)
    # make_outputs_varied tunes on greedy runs with EOS switched off, each to its length cap:
    # `max_generation_delta` 0 while tuning keeps them as long as the encoder output (30-38)
    cf.set_decoding(model, "greedy")
    with open_dict(model.cfg.decoding):
        model.cfg.decoding.greedy.max_generation_delta = TUNING_DELTA
    model.change_decoding_strategy(model.cfg.decoding)
    chosen = cf.make_outputs_varied(model, [signals[c] for c in CLIPS])
    chosen["tuning_greedy_max_generation_delta"] = TUNING_DELTA
    if spec.frame_tokens_live:
        chosen["frame_tokens"] = let_frame_tokens_through(model)
    restore_decoding(model, decoding)
    path = staging / f"{name}.nemo"
    model.save_to(str(path))
    added = (
        add_timestamps_model(path, timestamps_model(config, config["tokenizer"]), work)
        if spec.timestamps_model
        else []
    )
    restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
    assert isinstance(restored, EncDecMultiTaskModel)
    layout = tokenizer_layout(restored, spec)
    real = REAL_FLASH_IDS if spec.tokenizer == "aggregate" else REAL_V2_IDS
    for piece, token_id in real.items():
        assert layout["special_tokens"][piece] == token_id, (piece, layout["special_tokens"][piece])
    arrays, refs = references(restored, signals, spec)
    config_path = CONFIGS / f"{name}.yaml"
    meta = {
        **base.made_by(f"{COMMAND} {name}"),
        "checkpoint": f"nvidia/{name}",
        "published_config": str(config_path.relative_to(base.ROOT)),
        "published_config_sha256": base.file_sha256(config_path),
        "published_config_complete": name == COMPLETE,
        "closest_complete_config": None
        if name == COMPLETE
        else f"tests/reference/configs/{COMPLETE}.yaml",
        "config_sources": dict(sorted(sources.items())),
        "shrunk": shrunk,
        "tokenizer_model_sha256": {
            k: base.file_sha256(p) for k, p in tokenizer_files(config["tokenizer"]).items()
        },
        "model_class": f"{type(restored).__module__}.{type(restored).__name__}",
        "prompt_format": restored.prompt_format,
        "geometry": {
            "parameters": sum(p.numel() for p in restored.parameters()),
            "encoder_d_model": spec.enc_d_model,
            "decoder_hidden": spec.dec_hidden,
            "encoder_layers": restored.cfg.encoder.n_layers,
            "decoder_layers": restored.cfg.transf_decoder.config_dict.num_layers,
            "encoder_decoder_proj": isinstance(restored.encoder_decoder_proj, torch.nn.Linear),
        },
        "decoder": cf.decoder_layout(restored),
        "tokenizer": layout,
        "tokenizer_examples": tokenizer_examples(restored, spec),
        "weight_choices": chosen,
        **refs,
        "timestamps_asr_model_files": added,
        "state_dict": cf.state_dict_shapes(restored),
        "nemo_archive_members": cf.archive_members(path),
        "config": OmegaConf.to_container(restored.cfg, resolve=True, enum_to_str=True),
    }
    meta = base.to_jsonable(meta)
    print(f"{name}: {path.stat().st_size / 1e6:.2f} MB .nemo, {meta['geometry']}")
    print(f"  shrunk: {json.dumps(shrunk)}")
    print(f"  stats: {json.dumps(meta['stats'])}")
    print(f"  transcribe batched differs: {meta['transcribe_batched_differences']}")
    check(meta, spec)
    np.savez_compressed(staging / f"{name}.npz", **arrays)
    (staging / f"{name}.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    ckpt.build_all(__doc__, CHECKPOINTS, make_fixture, OUT)


if __name__ == "__main__":
    main()
