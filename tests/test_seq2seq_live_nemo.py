"""Live parity: NeMo's TransformerDecoderNM + TokenClassifier and its generators vs ours.

Random NeMo modules (pre-LN and post-LN), weights renamed by nemo-mlx-convert's mapping,
random encoder states of several lengths. Per-step logits within 1e-4, and greedy and beam
ids (and beam scores) equal to NeMo's generators run on each item alone and on the batch.
Runs where NeMo is importable.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_seq2seq_decoder import DecoderConfig, TransformerDecoder, beam_search, greedy_search
from nemo_mlx_convert.mapping import map_state_dict

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
transformer = pytest.importorskip("nemo.collections.asr.modules.transformer.transformer")
generators = pytest.importorskip("nemo.collections.asr.modules.transformer.transformer_generators")
classifier = pytest.importorskip("nemo.collections.asr.parts.submodules.token_classifier")

VOCAB, HIDDEN, MEMORY, PAD, BOS, EOS = 48, 32, 24, 0, 1, 2
PROMPT = [BOS, 7, 9, 11]
LENGTHS = [13, 9, 20]


def _nemo(pre_ln: bool):
    torch.manual_seed(1 if pre_ln else 2)
    decoder = transformer.TransformerDecoderNM(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_layers=2, inner_size=64, num_attention_heads=4,
        max_sequence_length=40, pre_ln=pre_ln, hidden_act="relu",
    ).eval()  # fmt: skip
    head = classifier.TokenClassifier(HIDDEN, VOCAB, num_layers=1, log_softmax=True).eval()
    head.mlp.layer0.weight = decoder.embedding.token_embedding.weight  # tied, as Canary
    proj = torch.nn.Linear(MEMORY, HIDDEN).eval()
    with torch.no_grad():
        for p in decoder.parameters():
            if p.dim() == 2:
                p.mul_(4.0)  # sharper distributions than the init gives, so ids vary
        head.mlp.layer0.bias[EOS] += 2.0
    return decoder, head, proj


def _ours(decoder, head, proj, pre_ln: bool) -> TransformerDecoder:
    state = {f"transf_decoder.{k}": v for k, v in decoder.state_dict().items()}
    state |= {f"log_softmax.{k}": v for k, v in head.state_dict().items()}
    state |= {f"encoder_decoder_proj.{k}": v for k, v in proj.state_dict().items()}
    mapped = map_state_dict(
        {k: v.numpy() for k, v in state.items()},
        "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel",
    )
    config = DecoderConfig(
        num_classes=VOCAB, hidden_size=HIDDEN, inner_size=64, num_layers=2, num_heads=4,
        max_sequence_length=40, pre_ln=pre_ln, final_layer_norm=pre_ln, memory_size=MEMORY,
    )  # fmt: skip
    prefix = "transf_decoder."
    weights = {k[len(prefix) :]: mx.array(v) for k, v in mapped.tensors.items()}
    decoder = TransformerDecoder(config)
    decoder.load_weights(list(weights.items()), strict=True)
    return decoder


def _memory(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((len(LENGTHS), max(LENGTHS), MEMORY)).astype(np.float32)
    mask = np.arange(max(LENGTHS))[None, :] < np.array(LENGTHS)[:, None]
    return states * mask[..., None], mask


def _nemo_generate(kind: str, decoder, head, proj, states, mask, **kwargs):
    cls = {
        "greedy": generators.GreedySequenceGenerator,
        "beam": generators.BeamSearchSequenceGenerator,
    }
    gen = cls[kind](
        decoder.embedding, decoder.decoder, head, pad=PAD, bos=BOS, eos=EOS,
        max_sequence_length=40, max_delta_length=6, **kwargs,
    )  # fmt: skip
    encoded = proj(torch.from_numpy(states))
    prompt = torch.tensor([PROMPT] * len(states))
    with torch.no_grad():
        return gen(
            prompt, encoded, torch.from_numpy(mask).float(), return_beam_scores=kind == "beam"
        )


@pytest.mark.parametrize("pre_ln", [True, False])
def test_step_logits_match_nemo(pre_ln):
    decoder, head, proj = _nemo(pre_ln)
    ours = _ours(decoder, head, proj, pre_ln)
    states, mask = _memory()
    encoded = proj(torch.from_numpy(states))
    rng = np.random.default_rng(3)
    path = rng.integers(3, VOCAB, size=(len(LENGTHS), 12))
    full = torch.from_numpy(np.concatenate([np.array([PROMPT] * len(LENGTHS)), path], axis=1))
    with torch.no_grad():
        hidden = decoder(
            input_ids=full, decoder_mask=torch.ones_like(full).float(),
            encoder_embeddings=encoded, encoder_mask=torch.from_numpy(mask).float(),
        )  # fmt: skip
        with head.with_log_softmax_enabled(False) as logits_head:
            expected = logits_head(hidden_states=hidden).numpy()
    logits, cache = ours.start(mx.array(states), mx.array(LENGTHS), [PROMPT] * len(LENGTHS))
    steps = [np.array(logits)]
    for t in range(path.shape[1]):
        steps.append(np.array(ours.step(mx.array(path[:, t]), cache)))
    got = np.stack(steps, axis=1)
    want = expected[:, len(PROMPT) - 1 :]
    per_step = np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1)
    assert per_step.max() < 1e-4


@pytest.mark.parametrize("pre_ln", [True, False])
def test_greedy_matches_nemo(pre_ln):
    decoder, head, proj = _nemo(pre_ln)
    ours = _ours(decoder, head, proj, pre_ln)
    states, mask = _memory()
    got = greedy_search(
        ours, mx.array(states), mx.array(LENGTHS), [PROMPT] * 3, eos_id=EOS, max_delta=6
    )
    lengths_seen = set()
    for i, length in enumerate(LENGTHS):
        item = _nemo_generate(
            "greedy", decoder, head, proj, states[i : i + 1, :length], mask[i : i + 1, :length]
        )
        ids = item[0][0].tolist()[len(PROMPT) :]
        want = ids[: ids.index(EOS)] if EOS in ids else ids
        assert got[i].tokens == want
        assert got[i].finished == (EOS in ids)
        lengths_seen.add(len(want))
    assert len(lengths_seen) > 1  # the fixture exercises both EOS and different lengths


@pytest.mark.parametrize("pre_ln", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_matches_nemo(pre_ln, alpha):
    decoder, head, proj = _nemo(pre_ln)
    ours = _ours(decoder, head, proj, pre_ln)
    states, mask = _memory()
    got = beam_search(
        ours, mx.array(states), mx.array(LENGTHS), [PROMPT] * 3,
        eos_id=EOS, pad_id=PAD, beam_size=4, length_penalty=alpha, max_delta=6,
    )  # fmt: skip
    for i, length in enumerate(LENGTHS):
        _, scores, best, _ = _nemo_generate(
            "beam", decoder, head, proj, states[i : i + 1, :length], mask[i : i + 1, :length],
            beam_size=4, len_pen=alpha,
        )  # fmt: skip
        ids = best[0].tolist()[len(PROMPT) :]
        want = [t for t in (ids[: ids.index(EOS)] if EOS in ids else ids) if t != PAD]
        assert got[i].tokens == want
        nemo_scores = sorted(scores[0].tolist())
        assert np.allclose(sorted(s for _, s in got[i].beams), nemo_scores, rtol=1e-4, atol=1e-4)


def test_left_padded_prompts_equal_single_runs():
    decoder, head, proj = _nemo(True)
    ours = _ours(decoder, head, proj, True)
    states, _ = _memory()
    prompts = [PROMPT, [BOS, 5], [BOS, 8, 9, 10, 12, 4]]
    batched = greedy_search(
        ours, mx.array(states), mx.array(LENGTHS), prompts, eos_id=EOS, max_delta=6
    )
    for i, prompt in enumerate(prompts):
        single = greedy_search(
            ours, mx.array(states[i : i + 1, : LENGTHS[i]]), mx.array(LENGTHS[i : i + 1]), [prompt],
            eos_id=EOS, max_delta=6,
        )  # fmt: skip
        assert batched[i].tokens == single[0].tokens
        assert np.allclose(batched[i].log_probs, single[0].log_probs, atol=1e-5)


def _trailing_stripped(ids: list[int]) -> list[int]:
    """NeMo's `format_hypotheses`: trailing EOS and PAD go, nothing else."""
    while ids and ids[-1] in (EOS, PAD):
        ids = ids[:-1]
    return ids


@pytest.mark.parametrize("eos_boost", [25.0, 30.0])  # EOS among the first-step top 4
def test_beam_nbest_with_eos_at_the_first_step_matches_nemo(eos_boost):
    """NeMo starts every beam unfinished, so an EOS chosen first stays inside a hypothesis."""
    decoder, head, proj = _nemo(True)
    with torch.no_grad():
        head.mlp.layer0.bias[EOS] += eos_boost
    ours = _ours(decoder, head, proj, True)
    states, mask = _memory()
    got = beam_search(
        ours, mx.array(states), mx.array(LENGTHS), [PROMPT] * 3,
        eos_id=EOS, pad_id=PAD, beam_size=4, length_penalty=0.0, max_delta=6,
    )  # fmt: skip
    inner_eos = 0
    for i, length in enumerate(LENGTHS):
        prefixes, scores, _, _ = _nemo_generate(
            "beam", decoder, head, proj, states[i : i + 1, :length], mask[i : i + 1, :length],
            beam_size=4, len_pen=0.0,
        )  # fmt: skip
        want = [_trailing_stripped(p.tolist()[len(PROMPT) :]) for p in prefixes[0]]
        assert [ids for ids, _ in got[i].beams] == want
        assert np.allclose([s for _, s in got[i].beams], scores[0].tolist(), atol=1e-4)
        inner_eos += sum(EOS in ids for ids in want)
    assert inner_eos  # the case this test is about happened
