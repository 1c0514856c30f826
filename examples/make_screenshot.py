"""The README's screenshot of `desample serve`: the page after cleaning two procedural previews, one
with a painted mask waiting. Needs the `dev` extra and Debian's Chromium.

    python examples/make_screenshot.py   # writes docs/web.png
"""

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

from desample.data.procedural import anime_picture
from desample.stamps.synthesis import apply_stamp, classic_sample_stamp

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from desample.web.app import ServeSettings, create_app, serving_in_thread

    with serving_in_thread(create_app(ServeSettings())) as url, tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        files = [str(ROOT / "examples" / "stamped.jpg")]
        for i, text in enumerate(["見本", "SAMPLE"]):
            truth = np.asarray(anime_picture(233, 330, seed=50 + i), np.float32) / 255
            path = Path(tmp) / f"preview_{i + 2}.jpg"
            stamped = apply_stamp(truth, classic_sample_stamp(330, 233, text=text, angle=20 + 10 * i, opacity=0.55))
            Image.fromarray((stamped * 255 + 0.5).astype(np.uint8)).save(path, quality=85)
            files.append(str(path))
        browser = p.chromium.launch(executable_path="/usr/lib/chromium/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(url)
        page.set_input_files("#files", files)
        page.click("#run")
        page.wait_for_function("document.querySelector('#overall-text').textContent.startsWith('3 of 3')", timeout=120_000)
        page.locator(".card").nth(1).locator(".slider").fill("35")
        # the third: back to painting, a stroke over what is left
        card = page.locator(".card").nth(2)
        card.locator(".edit").click()
        box = card.locator(".paint").bounding_box()
        page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.55 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.45 * box["height"], steps=10)
        page.mouse.up()
        out = ROOT / "docs" / "web.png"
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
