"""The README's before/after picture: bicubic of the stamped preview | desample | truth.

    python examples/make_example.py && python examples/make_figure.py   # writes examples/before_after.png
"""

from pathlib import Path

from PIL import Image, ImageDraw

from desample.core import restore
from desample.imageio import load_image, to_uint8
from desample.metrics import psnr
from desample.model.net import bicubic
from desample.model.weights import load_weights

HERE = Path(__file__).resolve().parent


def main() -> None:
    stamped, _ = load_image(HERE / "stamped.jpg")
    truth, _ = load_image(HERE / "truth.png")
    model = load_weights()
    panels = [("stamped preview, bicubic 2x", bicubic(stamped, 2)), ("desample clean --scale 2", restore(stamped, model).rgb),
              ("truth", truth)]
    w, h = truth.shape[1], truth.shape[0]
    fig = Image.new("RGB", (3 * w + 8, h + 20), (255, 255, 255))
    d = ImageDraw.Draw(fig)
    for i, (name, arr) in enumerate(panels):
        fig.paste(Image.fromarray(to_uint8(arr)), (i * (w + 4), 20))
        label = name if name == "truth" else f"{name}: {psnr(arr, truth):.2f} dB"
        d.text((i * (w + 4) + 4, 4), label, fill=(0, 0, 0))
    fig.save(HERE / "before_after.png")


if __name__ == "__main__":
    main()
