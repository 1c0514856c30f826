"""Export the model to ONNX (dynamic batch, height, width) and check it against PyTorch.

    desample export -o desample/weights/default.onnx

Inputs: `x` (B, 3, H, W) in [0,1] and `guide` (B, 2, H, W), H and W multiples of the model's
`multiple`; outputs: `sr` (B, 3, sH, sW), `lr` (B, 3, H, W), `mask` (B, 1, H, W) after the sigmoid.
Uses the TorchScript-based exporter (`dynamo=False`), which needs no onnxscript.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..model.net import DesampleNet
from .runtime import OUTPUTS


class _ExportWrapper(nn.Module):
    def __init__(self, model: DesampleNet):
        super().__init__()
        self.model = model

    def forward(self, x, guide):
        out = self.model(x, guide)
        return out.sr, out.lr, torch.sigmoid(out.mask_logits), out.matte


def export_onnx(model: DesampleNet, path: str | os.PathLike, opset: int = 17, info: dict | None = None) -> Path:
    """Write the ONNX file atomically and validate it with onnx.checker.

    The net's config (and `info`, e.g. the training step and validation numbers) go into the
    file's metadata, so ONNX Runtime alone knows the model's scale, padding and guide channels.
    """
    import json

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    m = model.config.multiple
    x = torch.rand(1, 3, 4 * m, 5 * m)
    guide = torch.zeros(1, model.config.guide_channels, 4 * m, 5 * m)
    tmp = path.with_name(path.name + ".tmp")
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        _ExportWrapper(model), (x, guide), str(tmp), dynamo=False, opset_version=opset,
        input_names=["x", "guide"], output_names=list(OUTPUTS),
        dynamic_axes={"x": axes, "guide": axes, "sr": axes, "lr": axes, "mask": axes, "matte": axes},
    )
    proto = onnx.load(str(tmp))
    config = {**model.config.to_dict(), "multiple": model.config.multiple, "border": model.config.border}
    for key, value in (("config", config), ("info", info or {})):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path


def max_difference(model: DesampleNet, onnx_path: str | os.PathLike, inputs: list[np.ndarray]) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch over (H, W, 3) pictures."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    m = model.config.multiple
    worst = 0.0
    for rgb in inputs:
        h, w = rgb.shape[0] // m * m, rgb.shape[1] // m * m
        x = np.ascontiguousarray(rgb[:h, :w].transpose(2, 0, 1)[None]).astype(np.float32)
        guide = np.zeros((1, model.config.guide_channels, h, w), np.float32)
        ort_out = sess.run(None, {"x": x, "guide": guide})
        with torch.inference_mode():
            pt_out = _ExportWrapper(model.eval())(torch.from_numpy(x), torch.from_numpy(guide))
        for a, b in zip(ort_out, pt_out, strict=True):
            worst = max(worst, float(np.abs(a - b.numpy()).max()))
    return worst


def release_info(weights: str | os.PathLike) -> dict:
    """The training facts from the weights' JSON sidecar worth carrying into the ONNX metadata."""
    import json

    sidecar = Path(weights).with_suffix(".json")
    info = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return {k: v for k, v in info.items() if k in ("step", "samples", "train_seconds", "val")}


def export_beside(weights: str | os.PathLike) -> Path | None:
    """Write `weights` (.safetensors) as .onnx beside it, from the same fp16-rounded values.

    Returns the ONNX path, or None when the onnx package is not installed.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    from ..model.weights import load_weights

    return export_onnx(load_weights(weights), Path(weights).with_suffix(".onnx"), info=release_info(weights))
