"""A Parakeet checkpoint's parts from its model directory: the class check, the weights
into the front end, encoder (with a multitalker model's speaker kernels), language prompt
and heads, their dtype and quantisation, and
the tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from mlx_audio_frontend import LogMel, LogMelConfig
from mlx_conformer import Conformer, LanguagePrompt, SpeakerKernels, quantize_linears
from mlx_ctc_decoder import CTCHead
from mlx_transducer import Transducer
from nemo_mlx_convert import ModelDirectory
from speech_transcript.checkpoints import CTC_CLASSES, model_class_problem

from .errors import ParakeetError
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class Parts:
    """The modules a Parakeet model runs; a head (or language prompt) the checkpoint lacks
    is None."""

    frontend: LogMel
    encoder: Conformer
    transducer: Transducer | None
    ctc: CTCHead | None
    tokenizer: Tokenizer
    prompt: LanguagePrompt | None = None  # a prompt model's projection after the encoder


def load_parts(
    model_dir: ModelDirectory, name: str, dtype: mx.Dtype, quantize: int | None = None
) -> Parts:
    """The checkpoint's modules in `dtype`, the encoder's and the transducer's linear layers
    quantised to `quantize` bits if given; ParakeetError for a checkpoint of another kind."""
    cfg, model_class = model_dir.nemo_config, model_dir.model_class
    if problem := model_class_problem(name, model_class, "parakeet"):
        raise ParakeetError(problem)
    weights = mx.load(str(model_dir.weights))
    frontend = LogMel(LogMelConfig.from_nemo(cfg["preprocessor"]))
    encoder = Conformer.from_nemo(cfg, weights)
    # a multitalker model's speaker kernels (`spk_kernels.*`) run inside the encoder
    encoder.attach_speaker_kernels(SpeakerKernels.from_nemo(weights))
    transducer = None if model_class in CTC_CLASSES else Transducer.from_nemo(cfg, weights)
    # a hybrid's head is `ctc_decoder.*`, a CTC model's `decoder.*`: the class decides
    ctc = CTCHead.from_nemo(cfg, weights, model_class)
    try:  # a prompt model is told by its `prompt_kernel.*` tensors, as NeMo builds them
        prompt = LanguagePrompt.from_nemo(cfg, weights)
    except ValueError as err:
        raise ParakeetError(f"{name}: {err}") from None
    if dtype != mx.float32:
        for module in (encoder, transducer, ctc, prompt):
            if module is not None:
                module.set_dtype(dtype)
    if quantize is not None:  # the encoder's and the transducer's linear layers
        for module in (encoder, transducer):
            if module is not None:
                quantize_linears(module, quantize)
    tokenizer = Tokenizer.from_model_directory(model_dir)
    return Parts(frontend, encoder, transducer, ctc, tokenizer, prompt)
