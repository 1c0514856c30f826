import numpy as np
import pytest
from PIL import Image

from desample.cli import main
from desample.data.procedural import anime_picture


@pytest.fixture()
def pictures(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    anime_picture(40, 30, seed=1).save(src / "a.jpg", quality=90)
    rgba = anime_picture(36, 28, seed=2).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((36, 28)))
    rgba.save(src / "b.png")
    (src / "broken.png").write_bytes(b"not a picture at all")
    return src


def _run(args):
    return main(args)


def test_single_file(tiny_weights, pictures, tmp_path):
    out = tmp_path / "out.png"
    assert _run(["clean", str(pictures / "a.jpg"), "-o", str(out), "--scale", "2", "--model", tiny_weights]) == 0
    assert Image.open(out).size == (80, 60)


def test_folder_with_a_bad_file_goes_on_and_fails_at_the_end(tiny_weights, pictures, tmp_path, capsys):
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in pictures.iterdir()}
    code = _run(["clean", str(pictures), "-o", str(out), "--scale", "2", "--model", tiny_weights])
    assert code == 1
    assert "broken.png" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    b = Image.open(out / "b.png")
    assert b.mode == "RGBA" and b.size == (72, 56)
    alpha = np.asarray(b)[..., 3]
    assert alpha[0].mean() < 30 and alpha[-1].mean() > 220  # the top-to-bottom gradient alpha survived
    assert {p.name: p.read_bytes() for p in pictures.iterdir()} == before, "an input was changed"


def test_scales_one_and_four(tiny_weights, pictures, tmp_path):
    for scale, size in ((1, (40, 30)), (4, (160, 120))):
        out = tmp_path / f"x{scale}.png"
        assert _run(["clean", str(pictures / "a.jpg"), "-o", str(out), "--scale", str(scale), "--model", tiny_weights]) == 0
        assert Image.open(out).size == size


def test_never_overwrites_an_input(tiny_weights, tmp_path):
    src = tmp_path / "p.png"
    anime_picture(24, 24).save(src)
    data = src.read_bytes()
    assert _run(["clean", str(src), "-o", str(src), "--model", tiny_weights]) == 1
    assert src.read_bytes() == data


def test_odd_modes_and_exif(tiny_weights, tmp_path):
    src = tmp_path / "modes"
    src.mkdir()
    base = anime_picture(30, 20, seed=5)
    base.convert("L").save(src / "grey.png")
    base.convert("P").save(src / "palette.png")
    base.convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257).save(src / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    base.save(src / "rotated.jpg", exif=exif)
    out = tmp_path / "out"
    assert _run(["clean", str(src), "-o", str(out), "--model", tiny_weights, "--quiet"]) == 0
    assert Image.open(out / "rotated.png").size == (40, 60)  # turned upright, then 2x
    for name in ("grey", "palette", "cmyk", "deep"):
        assert Image.open(out / f"{name}.png").size == (60, 40)


def test_glob_and_mask(tiny_weights, pictures, tmp_path):
    mask = tmp_path / "mask.png"
    Image.new("L", (10, 10), 255).save(mask)
    out = tmp_path / "g"
    assert _run(["clean", str(pictures / "*.jpg"), "-o", str(out), "--mask", str(mask), "--model", tiny_weights]) == 0
    assert (out / "a.png").exists()


def test_missing_input_is_a_clear_error(tiny_weights, tmp_path, capsys):
    assert _run(["clean", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png"), "--model", tiny_weights]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_same_stem_in_one_folder_keeps_both(tiny_weights, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    anime_picture(20, 20, seed=1).save(src / "a.jpg")
    anime_picture(20, 20, seed=2).save(src / "a.png")
    out = tmp_path / "out"
    assert _run(["clean", str(src), "-o", str(out), "--model", tiny_weights, "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a.png.png"]


def test_clean_options_no_detect_denoise_inpaint_tta(tiny_weights, pictures, tmp_path):
    mask = tmp_path / "mask.png"
    Image.new("L", (10, 10), 0).save(mask)
    outs = {}
    for name, extra in (("plain", []), ("nodetect", ["--no-detect"]), ("grain", ["--denoise", "0", "--no-detect"]),
                        ("inpaint", ["--mask", str(mask), "--inpaint"]), ("tta", ["--tta"])):
        out = tmp_path / f"{name}.png"
        assert _run(["clean", str(pictures / "a.jpg"), "-o", str(out), "--model", tiny_weights, *extra]) == 0
        outs[name] = np.asarray(Image.open(out), np.float32)
        assert outs[name].shape == (60, 80, 3)
    assert np.abs(outs["nodetect"] - outs["grain"]).mean() > 0.5
    assert np.abs(outs["plain"] - outs["nodetect"]).mean() > 0.01
    assert np.abs(outs["plain"] - outs["tta"]).mean() > 0.01
    assert _run(["clean", str(pictures / "a.jpg"), "-o", str(tmp_path / "x.png"), "--model", tiny_weights, "--denoise", "2"]) == 2


def test_train_without_the_train_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "desample.train.loop", None)  # as if torch were missing: the import fails
    assert main(["train", "--steps", "1"]) == 2
    assert "pip install -e '.[train]'" in capsys.readouterr().err


def test_denoise_by_default_for_jpeg_only(tiny_weights, pictures, tmp_path):
    """A lossless picture has no JPEG noise: by default it gets none of the reduction (--denoise 0)."""
    def clean(name, *extra):
        out = tmp_path / f"{name}-{'-'.join(extra) or 'default'}.png"
        assert _run(["clean", str(pictures / name), "-o", str(out), "--model", tiny_weights, "--no-detect", *extra]) == 0
        return np.asarray(Image.open(out), np.float32)

    for name, same_as, other in (("a.jpg", "1", "0"), ("b.png", "0", "1")):
        default = clean(name)
        assert np.array_equal(default, clean(name, "--denoise", same_as))
        assert np.abs(default - clean(name, "--denoise", other)).mean() > 0.5


def test_save_mask_writes_what_was_removed_and_takes_it_back(tiny_weights, pictures, tmp_path):
    drawn = np.zeros((30, 40), np.uint8)
    drawn[5:20, 8:30] = 255  # a box over the stamp, at the picture's size
    Image.fromarray(drawn).save(tmp_path / "drawn.png")
    first, second = tmp_path / "first" / "a.png", tmp_path / "second" / "a.png"
    args = ["--model", tiny_weights, "--no-detect", "--save-mask", "-q"]
    assert _run(["clean", str(pictures / "a.jpg"), "-o", str(first), "--mask", str(tmp_path / "drawn.png"), *args]) == 0
    saved = first.with_name("a.mask.png")
    assert Image.open(saved).mode == "L" and np.array_equal(np.asarray(Image.open(saved)), drawn)
    # Given back (as after editing it), the saved mask does what the drawn one did.
    assert _run(["clean", str(pictures / "a.jpg"), "-o", str(second), "--mask", str(saved), *args]) == 0
    assert np.array_equal(np.asarray(Image.open(second)), np.asarray(Image.open(first)))
    # A batch run before without masks is not "finished" for --skip-existing --save-mask: its masks are made.
    second.with_name("a.mask.png").unlink()
    assert _run(["clean", str(pictures / "a.jpg"), "-o", str(second), "--mask", str(saved), "--skip-existing", *args]) == 0
    assert np.array_equal(np.asarray(Image.open(second.with_name("a.mask.png"))), drawn)


def test_save_mask_is_what_detection_found(tiny_weights, pictures, tmp_path):
    from desample.core import restore
    from desample.engine.runtime import load_engine
    from desample.imageio import load_image, to_uint8

    out = tmp_path / "a.png"
    assert _run(["clean", str(pictures / "a.jpg"), "-o", str(out), "--model", tiny_weights, "--save-mask", "-q"]) == 0
    rgb, _ = load_image(pictures / "a.jpg", as_uint8=True)
    found = restore(rgb, load_engine(tiny_weights)).mask
    assert found.std() > 0  # the random tiny model's detection is not flat: the comparison below means something
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.mask.png")), to_uint8(found))


def test_save_mask_never_writes_over_an_input_or_output(tiny_weights, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    anime_picture(20, 20, seed=1).save(src / "a.png")
    anime_picture(20, 20, seed=2).save(src / "a.mask.png")  # a.png's mask would land on a.mask.png's output
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    assert _run(["clean", str(src), "-o", str(out), "--model", tiny_weights, "--save-mask", "-q"]) != 0
    assert "--save-mask would write" in capsys.readouterr().err
    assert not out.exists() and {p.name: p.read_bytes() for p in src.iterdir()} == before
