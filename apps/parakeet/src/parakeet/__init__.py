"""End-to-end Parakeet (TDT / RNNT / CTC / hybrid) transcription: Python API and the `parakeet` CLI.

Not built yet: see issue #6. Nothing in this package works so far."""
