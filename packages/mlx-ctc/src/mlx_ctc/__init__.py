"""CTC head, greedy and prefix-beam decoding.

Not built yet: see issue #5. Nothing in this package works so far."""
