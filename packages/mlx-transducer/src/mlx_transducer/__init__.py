"""TDT and RNNT prediction network, joint network, greedy and beam decoding.

Not built yet: see issue #5. Nothing in this package works so far."""
