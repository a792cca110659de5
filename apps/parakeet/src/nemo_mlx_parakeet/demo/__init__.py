"""The bundled demo model: a small FastConformer-TDT trained with NeMo on espeak-ng speech
(digits, numbers, times, common words), so that a machine without network transcribes
real speech. `parakeet.load("demo")` / `parakeet --model demo` use it; the package README
has its data card, `tools/train_demo_model.py` made it."""

from pathlib import Path

MODEL = Path(__file__).with_name("demo.nemo")
EXAMPLE = Path(__file__).with_name("example.wav")  # a voice and a sentence it was not trained on
EXAMPLE_TEXT = "please call anna at quarter past seven in the morning"
