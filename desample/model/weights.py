"""Weights I/O: released weights as fp16 safetensors + a JSON of config and metadata.

The model is always rebuilt from the saved config, never from command-line flags.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..paths import DEFAULT_SAFETENSORS as DEFAULT_WEIGHTS
from .net import DesampleNet, NetConfig, ResBlock


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the prefixes DDP (`module.`) and torch.compile (`_orig_mod.`) add to parameter names."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def save_weights(model: DesampleNet, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write `path` (.safetensors, fp16) and `path` with .json (config + metadata), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in clean_state_dict(model.state_dict()).items()}
    info = {"config": model.config.to_dict(), **(metadata or {})}
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(state, str(tmp), metadata={"config": json.dumps(model.config.to_dict())})
    os.replace(tmp, path)
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp_json, path.with_suffix(".json"))


def load_weights(path: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> DesampleNet:
    """Rebuild the model from its saved config and load its weights, in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path or DEFAULT_WEIGHTS)
    if not path.exists():
        raise FileNotFoundError(f"model weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" in meta:
        config = NetConfig.from_dict(json.loads(meta["config"]))
    else:
        config = NetConfig.from_dict(json.loads(path.with_suffix(".json").read_text())["config"])
    model = DesampleNet(config)
    state = clean_state_dict(load_file(str(path)))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: the weights do not match their saved config ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected, {len(wrong)} of another shape, e.g. {(missing + unexpected + wrong)[0]})")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    return model.to(dtype).eval()


def _shift_decoder(key: str, levels: int) -> str:
    part, _, rest = key.partition(".")
    if part not in ("up", "dec"):
        return key
    i, _, rest = rest.partition(".")
    return f"{part}.{int(i) + levels}.{rest}"


def average_weights(paths: list[str | os.PathLike]) -> DesampleNet:
    """The mean of several weights of one architecture, parameter by parameter (a "model soup").

    Weights that share an ancestor (runs resumed from one checkpoint, or one run's checkpoints) lie
    in one basin: their mean often scores above each of them, with no training.
    """
    if not paths:
        raise ValueError("nothing to average")
    models = [load_weights(p) for p in paths]
    for p, m in zip(paths[1:], models[1:], strict=True):
        if m.config != models[0].config:
            raise ValueError(f"{p}: another architecture than {paths[0]} ({m.config} vs {models[0].config})")
    states = [m.state_dict() for m in models]
    mean = {k: sum(st[k].float() for st in states) / len(states) for k in states[0]}
    models[0].load_state_dict(mean)
    return models[0]


def grow(model: DesampleNet, overrides: dict) -> DesampleNet:
    """The same function in a bigger net: `model` with more residual blocks (e.g. {"sr_blocks": 2}),
    more guide channels ({"guide_channels": 3}) or a deeper U-Net level (widths and blocks one
    longer, e.g. {"widths": (32, 48, 64, 96, 128), "blocks": (1, 1, 2, 2, 2)}: twice the receptive
    field for little compute, the new level sees 1/256 of the pixels).

    Every weight of `model` keeps its place; each new residual block starts as the identity (its
    last conv zeroed), a new guide channel's weights start at zero, and a new level's way back up
    starts at zero, so training goes on from what the model already does with room to do more.
    Other changes (other widths) are refused.
    """
    bigger = DesampleNet(NetConfig.from_dict({**model.config.to_dict(), **overrides}))
    old, new = dict(model.state_dict()), bigger.state_dict()
    deeper = len(bigger.config.widths) - len(model.config.widths)
    if deeper > 0 and bigger.config.widths[: len(model.config.widths)] == model.config.widths:
        # The decoder runs from the deepest level up: the old up.i / dec.i are the new up.(i+deeper).
        old = {_shift_decoder(k, deeper): v for k, v in old.items()}
    head, inputs = old["head.weight"], 3 + model.config.guide_channels
    if new["head.weight"].shape[1] > inputs and new["head.weight"].shape[0] == head.shape[0]:
        old["head.weight"] = torch.cat([head, head.new_zeros(head.shape[0], new["head.weight"].shape[1] - inputs,
                                                              *head.shape[2:])], dim=1)
    reshaped = sorted(k for k in old if k not in new or old[k].shape != new[k].shape)
    if reshaped:
        raise ValueError(f"cannot grow {model.config} into {bigger.config}: {reshaped[0]} has no place in it")
    added = sorted(set(new) - set(old))
    new_levels = {f"{part}.{i}" for i in range(deeper) for part in ("up", "dec")}
    new_levels |= {f"down.{len(model.config.widths) - 1 + i}" for i in range(deeper)}
    new_levels |= {f"enc.{len(model.config.widths) + i}" for i in range(deeper)}
    blocks = {k.rsplit(".", 2)[0] for k in added if ".".join(k.split(".")[:2]) not in new_levels}  # e.g. "sr_body.1"
    for block in blocks:
        if not isinstance(bigger.get_submodule(block), ResBlock):
            raise ValueError(f"cannot grow {model.config} into {bigger.config}: {block} is not a residual block")
    with torch.no_grad():
        for block in blocks | {f"dec.{i}" for i in range(deeper)}:
            conv2 = bigger.get_submodule(block).conv2
            conv2.weight.zero_()
            conv2.bias.zero_()
        for i in range(deeper):  # the new level adds nothing on the way up until it has learnt something
            bigger.up[i][0].weight.zero_()
            bigger.up[i][0].bias.zero_()
    missing, _ = bigger.load_state_dict(old, strict=False)
    assert sorted(missing) == added, "every weight but the new blocks' comes from the model"
    return bigger.train(model.training)
