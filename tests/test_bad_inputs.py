"""A corpus of bad and unusual inputs, made here: each gives a one-line error or a correct result,
the batch goes on, and no input is ever changed."""

import hashlib
import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from desample.cli import main
from desample.data.procedural import anime_picture


def _png_bomb(w: int, h: int) -> bytes:
    """A tiny PNG that declares w x h (a decompression bomb): it must be refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _ycck(cmyk_jpeg: bytes) -> bytes:
    """A CMYK JPEG relabelled YCCK (Adobe APP14 transform 2), as Photoshop writes them: decoded as YCCK."""
    at = cmyk_jpeg.index(b"Adobe")
    assert cmyk_jpeg[at - 4:at - 2] == b"\xff\xee"  # the APP14 marker
    return cmyk_jpeg[:at + 11] + b"\x02" + cmyk_jpeg[at + 12:]


@pytest.fixture()
def corpus(tmp_path):
    """name -> (file, expected: 'ok' or 'error')."""
    d = tmp_path / "in"
    d.mkdir()
    base = anime_picture(40, 30, seed=1)
    png, jpg = _bytes(base, "PNG"), _bytes(base, "JPEG", quality=90)
    files = {
        "empty.png": (b"", "error"),
        "truncated.png": (png[: len(png) // 2], "error"),
        "truncated.jpg": (jpg[: len(jpg) // 2], "error"),  # said, not silently filled with grey
        "page.jpg": (b"<html><body>404 not found</body></html>", "error"),
        "bomb.png": (_png_bomb(65535, 65535), "error"),
        "one.png": (_bytes(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), "ok"),
        "line.png": (_bytes(Image.new("RGB", (1, 57), (20, 200, 10)), "PNG"), "ok"),
        "cmyk.jpg": (_bytes(base.convert("CMYK"), "JPEG"), "ok"),
        "deep.png": (_bytes(Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257), "PNG"), "ok"),
        "palette_transparent.png": (_bytes(base.convert("P"), "PNG", transparency=0), "ok"),
        "la.png": (_bytes(base.convert("LA"), "PNG"), "ok"),
        "animated.gif": (_bytes(base, "GIF", save_all=True, append_images=[anime_picture(40, 30, seed=2)]), "ok"),
        "animated.webp": (_bytes(base, "WEBP", save_all=True, append_images=[anime_picture(40, 30, seed=2)]), "ok"),
        "icc.jpg": (_bytes(base, "JPEG", icc_profile=b"\0" * 128), "ok"),
        "名前 with spaces.png": (png, "ok"),
    }
    files["wide.png"] = (_bytes(Image.new("RGB", (65535, 1), (90, 30, 200)), "PNG"), "ok")  # the widest a PNG header says
    files["ycck.jpg"] = (_ycck(files["cmyk.jpg"][0]), "ok")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: 40x30 stored, 30x40 shown
    files["rotated.jpg"] = (_bytes(base, "JPEG", exif=exif.tobytes()), "ok")
    for name, (data, _) in files.items():
        (d / name).write_bytes(data)
    (d / "folder.png").mkdir()  # a directory named like a picture: walked into, holds one picture
    (d / "folder.png" / "inner.png").write_bytes(png)
    files["folder.png/inner.png"] = (png, "ok")
    return d, {k: v[1] for k, v in files.items()}


def _digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_every_bad_input_gets_one_clear_line_and_the_batch_goes_on(corpus, tiny_weights, tmp_path, capsys):
    src, expected = corpus
    before = _digest(src)
    out = tmp_path / "out"
    code = main(["clean", str(src), "-o", str(out), "--model", tiny_weights, "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    for name, want in expected.items():
        result = out / (name.rsplit(".", 1)[0] + ".png")
        if want == "ok":
            assert result.exists(), f"{name}: no result; stderr: {err}"
            im = Image.open(result)
            assert im.size[0] >= 2 and im.size[1] >= 2
        else:
            assert not result.exists(), name
            lines = [line for line in err.splitlines() if name in line]
            assert len(lines) == 1 and lines[0].startswith("error:"), (name, err)
            assert lines[0].count(name) == 1, lines[0]  # the path once, then why
    assert "decompression bomb" in err and "truncated" in err
    assert Image.open(out / "rotated.png").size == (60, 80)  # EXIF orientation applied, then 2x
    assert Image.open(out / "palette_transparent.png").mode == "RGBA"
    assert Image.open(out / "wide.png").size == (131070, 2)
    assert _digest(src) == before  # no input touched
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))  # no temp files left behind


def test_unreadable_file(tmp_path, tiny_weights):
    """A file without read permission: one clear line, exit 1. Root reads anything, so as root the CLI
    runs without the capabilities that let it (util-linux's setpriv), as a plain user would."""
    import shutil
    import subprocess
    import sys

    f = tmp_path / "secret.png"
    anime_picture(20, 20, seed=1).save(f)
    f.chmod(0)
    cmd = [sys.executable, "-m", "desample.cli", "clean", str(f), "-o", str(tmp_path / "o.png"), "--model", tiny_weights]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: every file is readable")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # liveness: torch's import alone took 60 s on a slow machine
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines[0] == f"error: {f}: permission denied", run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "o.png").exists()


def test_skip_existing_resumes_a_stopped_batch(tmp_path, tiny_weights, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        anime_picture(24, 20, seed=i).save(src / f"p{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "p1.png").write_bytes(b"done before")  # as if the first run had finished p1 before it was killed
    assert main(["clean", str(src), "-o", str(out), "--model", tiny_weights, "--skip-existing"]) == 0
    assert (out / "p1.png").read_bytes() == b"done before"
    assert Image.open(out / "p0.png").size == (48, 40) and Image.open(out / "p2.png").size == (48, 40)
    assert "skipped 1 picture" in capsys.readouterr().out


def test_weights_that_do_not_match_their_config_fail_clearly(tmp_path, tiny_weights, capsys):
    import json

    from safetensors.torch import load_file, save_file

    from desample.model.net import NetConfig

    bad = tmp_path / "bad.safetensors"
    save_file(load_file(tiny_weights), str(bad), metadata={"config": json.dumps(NetConfig().to_dict())})
    anime_picture(20, 20, seed=1).save(tmp_path / "a.png")
    assert main(["clean", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "do not match their saved config" in err and "Traceback" not in err


def test_a_batch_killed_mid_run_leaves_no_half_output_and_finishes_when_run_again(tmp_path, tiny_weights):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        anime_picture(160, 120, seed=i).save(src / f"p{i:02d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "desample.cli", "clean", str(src), "-o", str(out), "--model", tiny_weights,
           "--threads", "1", "-q", "--skip-existing"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # liveness, not speed: the start-up alone took over 60 s on a slow machine
    while time.time() < deadline and len(list(out.glob("p*.png"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("p*.png"))
    assert 0 < len(done) < 40, "the batch should have been killed part-way"
    for p in done:  # whatever exists is whole
        Image.open(p).load()
    for tmp in out.glob(".*"):  # a temp file may be left by the kill, never a half-written output
        assert tmp.name.endswith(".tmp")
    (out / ".p39.png.x1y2z3.tmp").write_bytes(b"half a picture")  # as a kill while writing p39 leaves it
    assert subprocess.run(cmd, timeout=900).returncode == 0
    assert len(list(out.glob("p*.png"))) == 40
    assert list(out.glob("*.tmp")) == list(out.glob(".*")) == []  # stale temp files swept when their output is written
