"""The FastConformer encoder (full/local attention, streaming cache).

Not built yet: see issue #4. Nothing in this package works so far."""
