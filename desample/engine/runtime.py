"""Inference engines: ONNX Runtime (the default, no torch needed) and PyTorch (training, tests).

An engine maps a batch of LR tiles to the network's named outputs (`EngineOutput`), all numpy
float32 NCHW:

    out = engine(x, guide)   # x (B,3,h,w) in [0,1], guide (B,2,h,w)
    out.sr, out.lr, out.mask, out.matte

and declares what tiling needs to know: `scale`, `multiple` (h and w must be multiples of it),
`border` (LR pixels at each tile edge that saw padding) and `guide_channels`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from ..paths import DEFAULT_ONNX, DEFAULT_SAFETENSORS

ENGINES = ("auto", "onnx", "torch")


class EngineOutput(NamedTuple):
    sr: np.ndarray  # (B, 3, s*h, s*w) the clean picture enlarged, not clamped
    lr: np.ndarray  # (B, 3, h, w) the clean picture at input size
    mask: np.ndarray  # (B, 1, h, w) probability that a pixel is under a stamp
    matte: np.ndarray  # (B, 1, h, w) the stamp's alpha as the network sees it


OUTPUTS = EngineOutput._fields  # the ONNX file's output names, in this order


class Engine(Protocol):
    scale: int
    multiple: int
    border: int
    guide_channels: int

    def __call__(self, x: np.ndarray, guide: np.ndarray) -> EngineOutput: ...


def _threads(threads: int) -> int:
    return threads if threads > 0 else (os.cpu_count() or 1)


class OnnxEngine:
    """The exported network on ONNX Runtime's CPU provider; its config travels in the ONNX metadata."""

    def __init__(self, path: str | os.PathLike = DEFAULT_ONNX, threads: int = 0):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = _threads(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # No memory arena: same speed here, ~180 MB less peak on a 4000x4000 picture (measured).
        opts.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "config" not in meta:
            raise ValueError(f"{path} has no desample config in its metadata; export it with `desample export`")
        config = json.loads(meta["config"])
        self.info = json.loads(meta.get("info", "{}"))
        self.scale = int(config.get("scale", 2))
        self.multiple = int(config["multiple"])
        self.border = int(config["border"])
        self.guide_channels = int(config["guide_channels"])
        names = tuple(o.name for o in self.session.get_outputs())
        if set(names) != set(OUTPUTS):
            raise ValueError(f"{path} gives the outputs {names}, not {OUTPUTS}: export it again with `desample export`")
        self.path = path

    def __call__(self, x: np.ndarray, guide: np.ndarray) -> EngineOutput:
        return EngineOutput(*self.session.run(list(OUTPUTS), {"x": x, "guide": guide}))


class TorchEngine:
    """A DesampleNet in PyTorch, eval mode, under inference_mode."""

    def __init__(self, model):
        import torch

        self._torch = torch
        self.model = model.eval()
        cfg = model.config
        self.scale, self.multiple, self.border, self.guide_channels = cfg.scale, cfg.multiple, cfg.border, cfg.guide_channels

    def __call__(self, x: np.ndarray, guide: np.ndarray) -> EngineOutput:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x), torch.from_numpy(guide))
            return EngineOutput(out.sr.numpy(), out.lr.numpy(), torch.sigmoid(out.mask_logits).numpy(), out.matte.numpy())


def as_engine(obj) -> Engine:
    """An engine as is; a DesampleNet wrapped in a TorchEngine."""
    if hasattr(obj, "guide_channels") and callable(obj) and not hasattr(obj, "config"):
        return obj
    return TorchEngine(obj)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def load_engine(model: str | os.PathLike | None = None, engine: str = "auto", threads: int = 0) -> Engine:
    """The engine for `model` (.onnx or .safetensors; default: the shipped model).

    auto: an .onnx file runs on ONNX Runtime; a .safetensors file on PyTorch; no file given ->
    the shipped ONNX model when ONNX Runtime is installed, else the shipped safetensors on PyTorch.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    path = Path(model) if model else None
    if engine == "auto":
        if path is not None:
            engine = "onnx" if path.suffix == ".onnx" else "torch"
        else:
            engine = "onnx" if onnxruntime_available() else "torch"
    if engine == "onnx":
        if path is not None and path.suffix != ".onnx":
            path = path.with_suffix(".onnx")  # the export beside the weights
        if not onnxruntime_available():
            raise ValueError("the ONNX engine needs onnxruntime: pip install onnxruntime")
        return OnnxEngine(path or DEFAULT_ONNX, threads)
    try:
        import torch
    except ImportError:
        raise ValueError("the PyTorch engine needs the training extra: pip install 'desample[train]'") from None
    from ..model.weights import load_weights

    torch.set_num_threads(_threads(threads))
    if path is not None and path.suffix == ".onnx":
        raise ValueError(f"{path} is an ONNX file: use --engine onnx (or auto)")
    return TorchEngine(load_weights(path or DEFAULT_SAFETENSORS))
