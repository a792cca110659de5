"""The frame-token parser on hand-made texts; NeMo's own outputs are checked in the root
tests (tests/test_canary_timestamps.py, fixture made by NeMo)."""

from __future__ import annotations

from nemo_mlx_canary.timestamps import FrameWord, parse, segments, token_frames


def test_words_between_pairs_and_the_rest_dropped():
    text, words = parse(" lead<|3|> Hello<|7|><|8|> world.<|12|> tail<|13|><|14|> x")
    assert words == [FrameWord("Hello", 3, 7), FrameWord("world.", 8, 12)]
    assert text == "Hello world."  # outside any pair: dropped; the empty pair: skipped


def test_pairs_are_taken_in_order():
    # <|1|>a<|2|> pairs, then "b" has only a closing token and "c" the next pair's content
    _, words = parse("<|1|>a<|2|>b<|3|>c<|4|>")
    assert words == [FrameWord("a", 1, 2), FrameWord("c", 3, 4)]


def test_no_pair_keeps_the_stripped_text():
    assert parse("  plain text ") == ("plain text", None)
    assert parse(" one<|5|> only ") == ("one<|5|> only", None)


def test_segments_end_at_sentence_punctuation():
    words = [FrameWord("Hi", 0, 2), FrameWord("there.", 3, 5), FrameWord("Go", 6, 7),
             FrameWord("!", 7, 8), FrameWord("more", 9, 11)]  # fmt: skip
    got = [(s.text, s.start, s.end, s.first_word, s.last_word) for s in segments(words)]
    assert got == [("Hi there.", 0, 5, 0, 1), ("Go !", 6, 8, 2, 3), ("more", 9, 11, 4, 4)]


def test_token_frames_follow_the_pairing():
    pieces = ["▁x", "<|3|>", "▁He", "llo", "<|7|>", "<|8|>", "<|9|>", "▁y"]
    assert token_frames(pieces) == [None, (3, 3), (3, 7), (3, 7), (7, 7), (8, 8), (9, 9), None]
