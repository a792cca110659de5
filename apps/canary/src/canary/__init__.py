"""End-to-end Canary transcription and translation: Python API and the `canary` CLI.

Not built yet: see issue #7. Nothing in this package works so far."""
