"""Where the shipped model lives inside the package (package data: present in an installed wheel)."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_ONNX = WEIGHTS_DIR / "default.onnx"  # what the plain install runs (ONNX Runtime)
DEFAULT_SAFETENSORS = WEIGHTS_DIR / "default.safetensors"  # the same weights for PyTorch (fp16)
