"""Prompts and the aggregate tokenizer on SentencePiece models trained here.

NeMo-made prompts and texts are checked on the Canary fixture model in the root tests.
"""

from __future__ import annotations

import io

import pytest
import sentencepiece as spm

from nemo_mlx_canary import CanaryError, CanaryTokenizer, PromptOptions, build_prompt

SPECIALS = ["<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>", "<|pnc|>", "<|nopnc|>",
            "<|startofcontext|>", "<|emo:undefined|>", "<|itn|>", "<|noitn|>", "<|timestamp|>",
            "<|notimestamp|>", "<|diarize|>", "<|nodiarize|>", "<|transcribe|>", "<|translate|>",
            "<|en|>", "<|de|>"]  # fmt: skip


def _train(
    lines: list[str], size: int, symbols: list[str] | None = None
) -> spm.SentencePieceProcessor:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=size,
        user_defined_symbols=symbols or [], model_type="bpe", character_coverage=1.0,
    )  # fmt: skip
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


@pytest.fixture(scope="module")
def tokenizer() -> CanaryTokenizer:
    special = _train(SPECIALS, len(SPECIALS) + 4, SPECIALS)
    en = _train(["the cat sat on the mat", "a dog ran far away", "hello world"] * 20, 40)
    de = _train(["der hund lief weit weg", "hallo welt", "die katze sass"] * 20, 40)
    return CanaryTokenizer([("spl_tokens", special), ("en", en), ("de", de)])


def test_ids_are_offset_by_the_sub_tokenizers_before(tokenizer):
    special_size = len(tokenizer._pieces) - 80
    en_ids = tokenizer.encode("the cat", "en")
    de_ids = tokenizer.encode("hallo welt", "de")
    assert all(special_size <= i < special_size + 40 for i in en_ids)
    assert all(special_size + 40 <= i < special_size + 80 for i in de_ids)
    assert tokenizer.decode(en_ids).strip() == "the cat"
    assert tokenizer.decode(de_ids).strip() == "hallo welt"


def test_prompt_layouts(tokenizer):
    s = tokenizer.special
    v1 = build_prompt(tokenizer, "canary", PromptOptions("en", "de", pnc=False))
    assert v1 == [
        s("<|startoftranscript|>"),
        s("<|en|>"),
        s("<|translate|>"),
        s("<|de|>"),
        s("<|nopnc|>"),
    ]
    v2 = build_prompt(tokenizer, "canary2", PromptOptions("en"))
    assert v2 == [s(t) for t in ("<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", "<|en|>",
                                 "<|en|>", "<|pnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>")]  # fmt: skip
    assert tokenizer.languages == ["de", "en"]


def test_bad_requests_are_one_clear_error(tokenizer):
    with pytest.raises(CanaryError, match="supported: de, en"):
        build_prompt(tokenizer, "canary", PromptOptions("fr"))
    with pytest.raises(CanaryError, match="use task ast"):
        build_prompt(tokenizer, "canary", PromptOptions("en", "de", task="asr"))
    with pytest.raises(CanaryError, match="prompt format"):
        build_prompt(tokenizer, "whisper", PromptOptions("en"))


def test_timestamps_need_the_canary2_slot_and_frame_tokens(tokenizer):
    with pytest.raises(CanaryError, match=r"no frame tokens \(<\|0\|>"):
        build_prompt(tokenizer, "canary2", PromptOptions("en", timestamps=True))
    with pytest.raises(CanaryError, match=r"prompt format \(canary\) has no timestamp slot"):
        build_prompt(tokenizer, "canary", PromptOptions("en", timestamps=True))
    frames = ["<|0|>", "<|1|>", "<|2|>"]
    special = _train(SPECIALS + frames, len(SPECIALS) + 7, SPECIALS + frames)
    en = _train(["the cat sat on the mat", "hello world"] * 20, 30)
    with_frames = CanaryTokenizer([("spl_tokens", special), ("en", en)])
    ids = build_prompt(with_frames, "canary2", PromptOptions("en", timestamps=True))
    assert ids[7] == with_frames.special("<|timestamp|>")


@pytest.fixture(scope="module")
def unified() -> CanaryTokenizer:
    """One SentencePiece model with the special tokens inside (canary-1b-v2's layout)."""
    symbols = [*SPECIALS, "<|ja|>", "<|0|>"]
    lines = ["the cat sat on the mat", "der hund lief weit weg", "hello world"] * 20
    return CanaryTokenizer([("spl_tokens", _train(lines, len(symbols) + 50, symbols))])


def test_unified_tokenizer_decodes_as_sentencepiece(unified):
    """NeMo's `CanaryBPETokenizer.ids_to_text` is SentencePiece's `decode`: no leading
    space, `<unk>` as ` ⁇ `, user-defined special pieces kept as they are."""
    sp = unified._parts[0].processor
    ids = sp.encode("the cat")
    assert unified.decode(ids) == "the cat"
    for case in ([0, *ids, 0], [unified.special("<|en|>"), *ids, unified.special("<|0|>")]):
        assert unified.decode(case) == sp.decode(case)
    assert unified.decode([unified.special("<|en|>"), *ids]) == "<|en|> the cat"


def test_unified_prompt_is_the_prompt_string_encoded(unified):
    """NeMo's canary2 formatter hands a unified tokenizer the prompt as one string, which
    SentencePiece encodes with its dummy prefix: a `▁` piece comes first."""
    tokens = ["<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", "<|en|>", "<|de|>",
              "<|pnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>"]  # fmt: skip
    sp = unified._parts[0].processor
    ids = build_prompt(unified, "canary2", PromptOptions("en", "de"))
    assert ids == sp.encode("".join(tokens))
    assert ids == [sp.piece_to_id("▁"), *(unified.special(t) for t in tokens)]


def test_unified_languages_are_the_model_cards_when_known(unified):
    assert unified.languages == ["de", "en", "ja"]  # every <|xx|> token
    card = CanaryTokenizer([("spl_tokens", unified._parts[0].processor)], languages=["en", "de"])
    assert card.languages == ["de", "en"]
    with pytest.raises(CanaryError, match="'ja' is not supported by this model; supported: de, en"):
        build_prompt(card, "canary2", PromptOptions("ja"))


def test_timestamps_from_an_aligner_are_refused(unified):
    """canary-1b-v2: NeMo times words with its CTC aligner (`timestamps_asr_model`), not with
    the decoder's frame tokens, and always prompts <|notimestamp|>."""
    aligner = ["timestamps_asr_model"]
    assert build_prompt(unified, "canary2", PromptOptions("en", timestamps=True))  # frame tokens
    with pytest.raises(CanaryError, match=r"CTC aligner model \(timestamps_asr_model\)"):
        build_prompt(unified, "canary2", PromptOptions("en", timestamps=True), aligner)
    plain = build_prompt(unified, "canary2", PromptOptions("en"), aligner)
    assert unified.special("<|notimestamp|>") in plain
