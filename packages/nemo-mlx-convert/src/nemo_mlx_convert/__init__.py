"""Converter: `.nemo` file or Hugging Face repo -> MLX model directory, with no torch.

Not built yet: see issue #3. Nothing in this package works so far."""
