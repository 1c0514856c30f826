"""`desample serve`'s API, in process: results, errors, limits, the busy gate, masks, shared stamps."""

import io
import os
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from desample.data.procedural import anime_picture  # noqa: E402
from desample.engine.runtime import load_engine  # noqa: E402
from desample.stamps.synthesis import apply_stamp, classic_sample_stamp, make_stamp  # noqa: E402
from desample.web.app import ServeSettings, create_app, download_name, serving_in_thread  # noqa: E402
from desample.web.loadtest import hammer, picture_bytes  # noqa: E402

from .test_bad_inputs import _png_bomb  # noqa: E402


@pytest.fixture(scope="module")
def engine():
    return load_engine(threads=2)


def _client(engine, **settings):
    return TestClient(create_app(ServeSettings(**settings), engine=engine))


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _picture(w=64, h=48, seed=3) -> bytes:
    return _png_bytes(np.asarray(anime_picture(w, h, seed=seed)))


def _decode(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_clean_answers_a_png_of_the_right_size(engine, scale):
    with _client(engine) as client:
        r = client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}, data={"scale": str(scale)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert _decode(r.content).shape == (48 * scale, 64 * scale, 3)
    assert (r.headers["x-output-width"], r.headers["x-output-height"]) == (str(64 * scale), str(48 * scale))
    assert f'filename="p_{scale}x.png"' in r.headers["content-disposition"]


def test_alpha_is_kept(engine):
    rgba = np.dstack([np.asarray(anime_picture(40, 30, seed=4)), np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))])
    with _client(engine) as client:
        r = client.post("/api/clean", files={"file": ("a.png", _png_bytes(rgba), "image/png")})
    out = _decode(r.content)
    assert out.shape == (60, 80, 4)
    assert out[:, 0, 3].mean() < 20 and out[:, -1, 3].mean() > 235


def test_same_result_as_the_core_function(engine):
    """The server is a thin layer: it answers what restore() gives."""
    from desample.core import restore

    data = _picture(50, 40, seed=7)
    with _client(engine) as client:
        r = client.post("/api/clean", files={"file": ("p.png", data, "image/png")})
    direct = restore(_decode(data), engine, dtype=np.uint8, denoise=0.0).rgb  # a PNG: no JPEG noise reduction
    assert np.array_equal(_decode(r.content), direct)
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=90)
    with _client(engine) as client:  # a JPEG: the full reduction; and the options go through
        r = client.post("/api/clean", files={"file": ("p.jpg", buf.getvalue(), "image/jpeg")})
        mirrored = client.post("/api/clean", files={"file": ("p.png", data, "image/png")},
                               data={"tta": "true", "scale": "1", "denoise": "1"})
    assert np.array_equal(_decode(r.content), restore(_decode(buf.getvalue()), engine, dtype=np.uint8).rgb)
    expected = restore(_decode(data), engine, scale=1, dtype=np.uint8, mirror=True).rgb
    assert np.array_equal(_decode(mirrored.content), expected)
    assert not np.array_equal(expected, restore(_decode(data), engine, scale=1, dtype=np.uint8).rgb)


@pytest.mark.parametrize("name,data,status,words", [
    ("notes.jpg", b"<html>404</html>", 422, "notes.jpg: not a picture"),
    ("empty.png", b"", 422, "empty.png: the file is empty"),
    ("bomb.png", _png_bomb(20000, 20000), 413, "bomb.png: 20000x20000 is too large"),
])
def test_bad_files_get_a_clear_error(engine, name, data, status, words):
    with _client(engine) as client:
        r = client.post("/api/clean", files={"file": (name, data, "image/png")})
    assert r.status_code == status
    assert words in r.json()["detail"]
    assert "Traceback" not in r.text


def test_bad_options_get_a_clear_error(engine):
    with _client(engine) as client:
        r = client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}, data={"scale": "3"})
        assert r.status_code == 422 and "scale must be one of 1, 2, 4" in r.json()["detail"]
        r = client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}, data={"denoise": "2"})
        assert r.status_code == 422


def test_upload_and_output_limits(engine):
    with _client(engine, max_upload_mb=0.05, max_output_pixels=64 * 48 * 4) as client:
        big = os.urandom(80_000)
        r = client.post("/api/clean", files={"file": ("big.png", big, "image/png")})
        assert r.status_code == 413 and "at most 0.05 MB" in r.json()["detail"]
        ok = client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}, data={"scale": "2"})
        assert ok.status_code == 200
        r = client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}, data={"scale": "4"})
        assert r.status_code == 413 and "choose a smaller scale" in r.json()["detail"]


def test_path_tricks_in_file_names_go_nowhere(engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with _client(engine) as client:
        r = client.post("/api/clean", files={"file": ("../../../etc/evil name;.png", _picture(), "image/png")})
    assert r.status_code == 200
    assert 'filename="evil_name_2x.png"' in r.headers["content-disposition"]
    assert list(tmp_path.iterdir()) == []
    assert download_name("..\\..\\x.png", "") == "x.png"
    assert download_name("....", "_2x") == "picture_2x.png"


def test_temporary_folder_is_its_own_and_is_removed(tiny_weights):
    engine = load_engine(tiny_weights, threads=1)  # about the upload, not the model: a 700x700 picture stays quick
    before = tempfile.gettempdir()
    embedded = create_app(ServeSettings(), engine=engine)
    with TestClient(embedded):
        assert tempfile.gettempdir() == before  # an app inside another process leaves its temp folder alone
    app = create_app(ServeSettings(), engine=engine, own_tempdir=True)  # as `desample serve` makes it
    with TestClient(app) as client:
        ours = app.state.runtime["tmp"]
        assert tempfile.gettempdir() == str(ours) and ours.is_dir()
        # an upload over 1 MB is spooled to disk: into our folder
        noisy = _png_bytes(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8))
        assert len(noisy) > 1024 * 1024
        assert client.post("/api/clean", files={"file": ("n.png", noisy, "image/png")}, data={"scale": "1"}).status_code == 200
    assert not ours.exists()
    assert tempfile.gettempdir() == before


class _SlowEngine:
    """The real engine, held back until released: lets a test fill the server."""

    def __init__(self, engine):
        self.engine, self.release = engine, threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __call__(self, *args):
        self.release.wait(30)
        return self.engine(*args)


def test_busy_server_answers_503_with_retry_after(engine):
    slow = _SlowEngine(engine)
    app = create_app(ServeSettings(workers=1, queue=1, retry_after=7), engine=slow)
    with TestClient(app) as client:
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(
            client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}).status_code)) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.time() + 10
        while app.state.gate.inside < 2 and time.time() < deadline:
            time.sleep(0.01)
        r = client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "7" and "busy" in r.json()["detail"]
        assert client.get("/api/info").json()["busy"] == 2  # reading stays possible while busy
        slow.release.set()
        for t in threads:
            t.join(30)
        assert answers == [200, 200]
        assert app.state.gate.inside == 0
        assert client.post("/api/clean", files={"file": ("p.png", _picture(), "image/png")}).status_code == 200


def test_painted_mask_changes_the_result(engine):
    """Painting over a logo the model half misses removes more of it; an empty painting changes nothing.

    Per picture the gain varies with the weights (painted / plain error 0.3x-0.97x over six logos),
    so the errors are summed over three pictures."""
    h, w = 120, 160
    err = {"plain": 0.0, "painted": 0.0, "exact": 0.0}
    with _client(engine) as client:
        for seed in (9, 11, 13):
            truth = np.asarray(anime_picture(w, h, seed=seed), np.float32) / 255
            stamp = make_stamp(h, w, np.random.default_rng(seed), "logo", extra=False)
            data = _png_bytes((apply_stamp(truth, stamp) * 255 + 0.5).astype(np.uint8))
            painted = (stamp.alpha > 0.05).astype(np.uint8) * 255
            plain = _decode(client.post("/api/clean", files={"file": ("p.png", data, "image/png")}, data={"scale": "1"}).content)
            r = client.post("/api/clean", files={"file": ("p.png", data, "image/png"),
                                                 "mask": ("mask.png", _png_bytes(painted), "image/png")}, data={"scale": "1"})
            exact = _decode(client.post("/api/clean", files={"file": ("p.png", data, "image/png"),
                                                             "mask": ("mask.png", _png_bytes(painted), "image/png")},
                                        data={"scale": "1", "inpaint": "true"}).content)
            inside = painted > 0
            for k, v in (("plain", plain), ("painted", _decode(r.content)), ("exact", exact)):
                err[k] += np.abs(v[inside] / 255.0 - truth[inside]).mean()
            assert float(r.headers["x-stamp-coverage"]) >= inside.mean()
        empty = client.post("/api/clean", files={"file": ("p.png", data, "image/png"),
                                                 "mask": ("mask.png", _png_bytes(painted * 0), "image/png")}, data={"scale": "1"})
    # Painted on the stamp's edges: repainting all of it (inpaint) beats repainting what the net sees.
    assert err["exact"] < 0.5 * err["plain"] and err["painted"] < 0.8 * err["plain"], err
    assert np.array_equal(_decode(empty.content), plain)  # an empty painting is no mask


def test_shared_stamp_estimated_then_used(engine):
    """Pictures sharing a stamp: /api/estimate gives it, /api/clean with it removes more than blind."""
    h, w = 160, 224
    stamp = classic_sample_stamp(h, w, opacity=0.5)
    truths = [np.asarray(anime_picture(w, h, seed=20 + i), np.float32) / 255 for i in range(8)]
    stamped = [_png_bytes((apply_stamp(t, stamp) * 255 + 0.5).astype(np.uint8)) for t in truths]
    with _client(engine) as client:
        r = client.post("/api/estimate", files=[("files", (f"{i}.png", s, "image/png")) for i, s in enumerate(stamped)])
        assert r.status_code == 200, r.text
        est = _decode(r.content)
        assert est.shape == (h, w, 4)
        misfit = r.headers["X-Stamp-Misfit"]  # "None" when the network does not know the stamp's kind
        assert misfit == "None" or float(misfit) < 1.0
        assert r.headers["X-Stamp-Explains"] == "true"  # the page uses the stamp
        assert r.headers["X-Stamp-Not-Sharing"] == ""  # on every picture
        blind = _decode(client.post("/api/clean", files={"file": ("0.png", stamped[0], "image/png")}, data={"scale": "1"}).content)
        guided = _decode(client.post("/api/clean", files={"file": ("0.png", stamped[0], "image/png"),
                                                          "stamp": ("stamp.png", r.content, "image/png")}, data={"scale": "1"}).content)
        one = client.post("/api/estimate", files=[("files", ("0.png", stamped[0], "image/png"))])
        assert one.status_code == 422 and "2 to 16 pictures" in one.json()["detail"]
        bad = client.post("/api/clean", files={"file": ("0.png", stamped[0], "image/png"),
                                               "stamp": ("stamp.png", _picture(), "image/png")})
        assert bad.status_code == 422 and "RGBA stamp" in bad.json()["detail"]
    inside = stamp.alpha > 0.1
    err = {k: np.abs(v[inside] / 255.0 - truths[0][inside]).mean() for k, v in (("blind", blind), ("guided", guided))}
    # The stamp the page gets is the set's stamp (matte error 0.018 measured), and using it pays. Step
    # 14250 weights: blind 0.067, guided 0.056; step 20250: blind 0.058, guided 0.053 (the true stamp
    # 0.003): blind catches up as the model trains, so the margin is asked of the matte, not the model.
    assert np.abs(est[..., 3] / 255.0 - stamp.alpha).mean() < 0.03
    assert err["guided"] < err["blind"], err


def test_page_and_api_are_described_and_offline(engine):
    with _client(engine) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<title>desample" in page.text
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/clean", "/api/estimate", "/api/info"} <= set(paths)
        for asset in ("app.js", "zip.js", "style.css"):
            text = client.get(f"/static/{asset}").text
            assert "http://" not in text and "https://" not in text and "@import" not in text, asset
        assert "http://" not in page.text and "https://" not in page.text


def test_twenty_callers_at_once_all_answer(engine):
    """A real server on a port: 20 requests at the same moment all get 200 or 503, none hangs."""
    with serving_in_thread(create_app(ServeSettings(workers=1, queue=3), engine=engine)) as url:
        report = hammer(url, n=20, data=picture_bytes(96, 128), timeout=300)
    assert set(report["statuses"]) <= {"200", "503"}, report
    assert report["statuses"].get("200", 0) >= 4 and report["statuses"].get("503", 0) >= 1, report
    assert report["slowest_s"] < 240  # none hangs (a liveness bound, not a speed target)
