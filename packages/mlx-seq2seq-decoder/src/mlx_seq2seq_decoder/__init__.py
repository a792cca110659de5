"""Transformer decoder (Canary) with KV cache, greedy and beam decoding.

Not built yet: see issue #7. Nothing in this package works so far."""
