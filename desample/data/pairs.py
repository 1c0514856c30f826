"""Training pairs, made the way previews are made: HR -> downscale -> stamp -> JPEG.

A "preview" is a whole small picture (long side 200-420 px) stamped at its own scale, so a big
SAMPLE word spans the picture as on real previews; training crops are then cut from it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..ops import dilate
from ..stamps.synthesis import Stamp, apply_stamp, make_stamp, preview_stamp, real_preview_stamp
from .graphics import add_own_graphics

# bicubic / area / lanczos / bilinear: the resamplers previews are made with.
DOWNSCALE_FILTERS = (Image.BICUBIC, Image.BOX, Image.LANCZOS, Image.BILINEAR)


@dataclass
class Preview:
    stamped: np.ndarray  # (h, w, 3) float32 [0,1]: stamped, JPEG-compressed LR, the model's input
    clean_lr: np.ndarray  # (h, w, 3) float32: the LR picture before stamping and JPEG
    hr: np.ndarray  # (s*h, s*w, 3) float32: the truth
    alpha: np.ndarray  # (h, w) float32: the stamp's matte at LR
    color: np.ndarray  # (h, w, 3) float32: the stamp's colour at LR
    mask: np.ndarray  # (h, w) bool
    kind: str


def jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    """One JPEG round trip with 4:2:0 chroma subsampling, as web previews are saved."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255.0


def random_jpeg(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.2:
        return arr  # PNG previews exist
    arr = jpeg(arr, int(rng.integers(50, 96)))
    if r > 0.8:  # re-saved once more by some site
        arr = jpeg(arr, int(rng.integers(60, 96)))
    return arr


def downscale(hr: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    return hr.resize(size, DOWNSCALE_FILTERS[int(rng.integers(len(DOWNSCALE_FILTERS)))])


def hr_region(picture: Image.Image, lr_long: int, scale: int, rng: np.random.Generator) -> Image.Image:
    """A random region of the picture resized (down only) so its long side is about scale * lr_long.

    Even sizes divisible by scale; never enlarged, since an enlarged truth would teach blur.
    """
    w, h = picture.size
    hr_long = min(scale * lr_long, max(w, h))
    region_long = int(rng.uniform(hr_long, max(w, h) + 1))
    f = region_long / max(w, h)
    rw, rh = max(1, int(w * f)), max(1, int(h * f))
    x, y = int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1))
    region = picture.crop((x, y, x + rw, y + rh))
    k = hr_long / region_long
    tw = max(scale, int(rw * k) // scale * scale)
    th = max(scale, int(rh * k) // scale * scale)
    return region.resize((tw, th), Image.BOX) if (tw, th) != region.size else region


def make_preview(
    hr: Image.Image, rng: np.random.Generator, scale: int = 2, kind: str | None = None, stamp: Stamp | None = None
) -> Preview:
    """Stamp an HR picture the way a preview is made. hr sides must be multiples of scale."""
    w, h = hr.size[0] // scale, hr.size[1] // scale
    lr = downscale(hr, (w, h), rng)
    clean_lr = np.asarray(lr, np.float32) / 255.0
    stamp = stamp or make_stamp(h, w, rng, kind)
    stamped = random_jpeg(np.clip(apply_stamp(clean_lr, stamp), 0, 1), rng)
    return Preview(
        stamped=stamped,
        clean_lr=clean_lr,
        hr=np.asarray(hr, np.float32) / 255.0,
        alpha=stamp.alpha,
        color=np.broadcast_to(stamp.color, clean_lr.shape),
        mask=stamp.mask,
        kind=stamp.kind,
    )


def flatten_alpha(im: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
    """RGB picture; transparent parts go onto a plain light background (their RGB is often junk)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        shade = tuple(int(v) for v in (rng.integers(200, 256, 3) if rng is not None else (255, 255, 255)))
        bg = Image.new("RGB", im.size, shade)
        if rng is not None and rng.random() < 0.5:  # a two-colour gradient, as cut-outs are shown on cards and sites
            top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            t = np.linspace(0, 1, im.size[1], dtype=np.float32)[:, None, None]
            bg = Image.fromarray(np.broadcast_to((1 - t) * top + t * bottom, (im.size[1], im.size[0], 3)).astype(np.uint8))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def add_light_spots(hr: Image.Image, rng: np.random.Generator) -> Image.Image:
    """hr with bokeh circles and soft glows painted in, as part of the picture (not a stamp).

    Why: on clean held-out pictures a model trained without them marked bokeh, lens flares and
    glowing lights as stamp (soft, bright, see-through, like a stamp's glow) and painted them away
    (1.8% of the picture; 1.4% after training with them, docs/model_history.md). Seen as content in
    training, with the truth keeping them, they teach the detector what is not a stamp.
    """
    w, h = hr.size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    base = rng.integers(150, 256, 3)
    for _ in range(int(rng.integers(2, 16))):
        r = float(rng.uniform(0.01, 0.08)) * max(w, h)
        cx, cy = rng.uniform(-r, w + r), rng.uniform(-r, h + r)
        colour = np.clip(base + rng.integers(-40, 41, 3), 0, 255)
        opacity = int(rng.integers(40, 180))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*map(int, colour), opacity))
    # Sharp-edged bokeh discs or soft glows.
    layer = layer.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 0.02 * max(w, h)))))
    if rng.random() < 0.5:  # light adds: screen the spots on (bright where they overlap)
        a = np.asarray(layer, np.float32) / 255.0
        pic = np.asarray(hr.convert("RGB"), np.float32) / 255.0
        spot = a[..., :3] * a[..., 3:]
        return Image.fromarray(np.clip((1 - (1 - pic) * (1 - spot)) * 255 + 0.5, 0, 255).astype(np.uint8))
    return Image.alpha_composite(hr.convert("RGBA"), layer).convert("RGB")


_CHANNEL_ORDERS = ("RBG", "GRB", "GBR", "BRG", "BGR")  # every permutation but the identity


class CropSampler:
    """Crops (stamped LR, guide, clean LR, HR, matte, mask) from a rolling pool of previews.

    Making a preview costs ~10 ms; each step replaces only a few, so synthesis costs a small
    fraction of a training step while every crop still comes from a freshly stamped picture soon.
    """

    def __init__(self, pictures: Sequence[Image.Image] | Iterator[Image.Image], rng: np.random.Generator, scale: int = 2,
                 pool_size: int = 48, guide_prob: float = 0.3, dihedral: bool = False, channel_shuffle: float = 0.0,
                 stamp_crops: float = 0.5, unstamped: float = 0.3, guide_channels: int = 2,
                 light_spots: float = 0.0, preview_stamps: float = 0.0, own_graphics: float = 0.0, real_stamps: float = 0.0,
                 large_previews: float = 0.0, noise_pictures: float = 0.0):
        """pictures: a list to draw from at random, or an endless iterator (a `PictureSource`).

        dihedral: each picture in any of its 8 flips and quarter turns (else mirrored or not).
        channel_shuffle: share of pictures with their RGB channels permuted (not the identity).
        stamp_crops: share of crops placed on the stamp (the rest anywhere); unstamped: share of
        previews with no stamp at all. Both set the prior the detector learns: a small stamp lies
        in few random crops, and whole pictures are mostly unstamped.
        guide_channels: the network's guide channels (a known matte or mask, and a "guide given" flag).
        light_spots: share of pictures with bokeh and glows painted in as content (add_light_spots).
        preview_stamps: share of stamped previews under a see-through glowing word
        (synthesis.preview_stamp, the case `desample bench --shared-stamps preview` measures) instead
        of make_stamp's mix.
        own_graphics: share of pictures with their own frames, text boxes, plates, numbers, titles,
        balloons or credits drawn into the truth (graphics.add_own_graphics): text alone is no stamp.
        real_stamps: share of stamped previews under a real preview's stamp (synthesis.real_preview_stamp:
        one bold condensed word, mostly white or light grey, 45-100% opaque, near the middle).
        large_previews: share of previews with a long side of 420-750 px instead of 200-420 (real
        previews go up to about 750x1050): the same stamp's letters in more pixels.
        noise_pictures: share of previews that are no picture at all (noise, stripes), unstamped: the
        detector must not call a whole noisy picture a stamp.
        """
        self.pictures, self.rng, self.scale, self.guide_prob = pictures, rng, scale, guide_prob
        self.dihedral, self.stamp_crops, self.unstamped = dihedral, stamp_crops, unstamped
        self.channel_shuffle, self.light_spots, self.preview_stamps = channel_shuffle, light_spots, preview_stamps
        self.guide_channels = guide_channels
        self.own_graphics, self.real_stamps, self.large_previews = own_graphics, real_stamps, large_previews
        self.noise_pictures = noise_pictures
        self.pool = [self._new_preview() for _ in range(pool_size)]

    def _next_picture(self) -> Image.Image:
        if isinstance(self.pictures, Sequence):
            return self.pictures[int(self.rng.integers(len(self.pictures)))]
        return next(self.pictures)

    def _drawn(self, share: float) -> bool:
        """True with probability share; no draw at 0, so older configs' data streams stay as they were."""
        return bool(share) and self.rng.random() < share

    def _new_preview(self) -> Preview:
        if self._drawn(self.noise_pictures):
            hr = noise_picture(int(self.rng.integers(200, 421)) * self.scale, int(self.rng.integers(200, 421)) * self.scale, self.rng)
            return make_preview(hr, self.rng, self.scale, stamp=_no_stamp(hr.size[1] // self.scale, hr.size[0] // self.scale))
        pic = self._next_picture()
        lr_long = int(self.rng.integers(420, 751)) if self._drawn(self.large_previews) else int(self.rng.integers(200, 421))
        hr = hr_region(pic, lr_long, self.scale, self.rng)
        if self.rng.random() < 0.5:
            hr = hr.transpose(Image.FLIP_LEFT_RIGHT)
        if self.dihedral:
            # With the mirror above: all 8. The stamp is drawn afterwards, upright as on real previews.
            if self.rng.random() < 0.5:
                hr = hr.transpose(Image.TRANSPOSE)
            if self.rng.random() < 0.5:
                hr = hr.transpose(Image.ROTATE_180)
        if self.rng.random() < self.channel_shuffle:
            order = _CHANNEL_ORDERS[int(self.rng.integers(len(_CHANNEL_ORDERS)))]
            hr = Image.merge("RGB", [hr.getchannel(c) for c in order])
        if self.rng.random() < self.light_spots:
            hr = add_light_spots(hr, self.rng)
        if self._drawn(self.own_graphics):
            hr = add_own_graphics(hr, self.rng)
        h, w = hr.size[1] // self.scale, hr.size[0] // self.scale
        if self.rng.random() < self.unstamped:
            return make_preview(hr, self.rng, self.scale, stamp=_no_stamp(h, w))
        stamp = None
        if self._drawn(self.preview_stamps):
            stamp = preview_stamp(h, w, self.rng)
        elif self._drawn(self.real_stamps):
            stamp = real_preview_stamp(h, w, self.rng)
        return make_preview(hr, self.rng, self.scale, stamp=stamp)

    def refresh(self, n: int) -> None:
        for _ in range(n):
            self.pool[int(self.rng.integers(len(self.pool)))] = self._new_preview()

    def batch(self, batch_size: int, patch: int) -> dict[str, np.ndarray]:
        """NCHW float32 arrays: x, lr, color (B,3,p,p), guide (B,G,p,p), hr (B,3,sp,sp), alpha, mask (B,1,p,p)."""
        s = self.scale
        out = {k: [] for k in ("x", "guide", "lr", "hr", "alpha", "color", "mask")}
        for _ in range(batch_size):
            pv = self.pool[int(self.rng.integers(len(self.pool)))]
            h, w = pv.mask.shape
            p = min(patch, h, w)
            ys, xs = np.nonzero(pv.mask)
            if len(ys) and self.rng.random() < self.stamp_crops:  # on the stamp, where the work is
                i = int(self.rng.integers(len(ys)))
                y = int(np.clip(ys[i] - self.rng.integers(0, p), 0, h - p))
                x = int(np.clip(xs[i] - self.rng.integers(0, p), 0, w - p))
            else:
                y, x = int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
            sl = (slice(y, y + p), slice(x, x + p))
            alpha = pv.alpha[sl]
            mask = pv.mask[sl]
            guide = np.zeros((self.guide_channels, p, p), np.float32)
            if self.rng.random() < self.guide_prob:
                # Users give a binary mask (often a bit too big); the estimator gives a matte.
                guide[0] = alpha if self.rng.random() < 0.5 else dilate(mask.astype(bool), int(self.rng.integers(0, 3))).astype(np.float32)
                guide[1] = 1.0
            crop = {
                "x": pv.stamped[sl].transpose(2, 0, 1),
                "guide": guide,
                "lr": pv.clean_lr[sl].transpose(2, 0, 1),
                "hr": pv.hr[y * s : (y + p) * s, x * s : (x + p) * s].transpose(2, 0, 1),
                "alpha": alpha[None],
                "color": pv.color[sl].transpose(2, 0, 1),
                "mask": mask[None].astype(np.float32),
            }
            if p < patch:  # a preview smaller than the patch: pad by reflection
                crop = {k: _pad_to(v, patch * (s if k == "hr" else 1)) for k, v in crop.items()}
            for k, v in crop.items():
                out[k].append(v)
        return {k: np.ascontiguousarray(np.stack(v)) for k, v in out.items()}


def _no_stamp(h: int, w: int) -> Stamp:
    return Stamp(np.zeros((h, w), np.float32), np.zeros((h, w, 3), np.float32), "none")


def noise_picture(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """Something that is no illustration: coloured or grey noise, fine or coarse, or stripes."""
    r = rng.random()
    if r < 0.7:
        cell = int(rng.choice([1, 1, 2, 4, 8]))
        grey = rng.random() < 0.3
        small = rng.random((max(1, h // cell), max(1, w // cell), 1 if grey else 3))
        small = np.repeat(small, 3, axis=2) if grey else small
        im = Image.fromarray((small * 255).astype(np.uint8))
        return im.resize((w, h), Image.NEAREST if rng.random() < 0.5 else Image.BICUBIC)
    period = float(rng.uniform(2, 20))
    t = np.sin(np.arange(w)[None, :] / period * 2 * np.pi + np.arange(h)[:, None] * float(rng.uniform(-0.5, 0.5)))
    colours = rng.random((2, 3))
    arr = (0.5 + 0.5 * t)[..., None] * colours[0] + (0.5 - 0.5 * t)[..., None] * colours[1]
    return Image.fromarray((arr * 255).astype(np.uint8))


def _pad_to(arr: np.ndarray, size: int) -> np.ndarray:
    c, h, w = arr.shape
    return np.pad(arr, ((0, 0), (0, size - h), (0, size - w)), mode="reflect" if min(h, w) > 1 else "edge")
