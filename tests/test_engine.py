"""The default engine: the shipped ONNX model on ONNX Runtime, in step with the safetensors, without torch."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desample.core import restore
from desample.data.procedural import anime_picture
from desample.engine.runtime import OnnxEngine, TorchEngine, load_engine
from desample.model.weights import load_weights
from desample.paths import DEFAULT_ONNX

pytest.importorskip("onnxruntime")
tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engines():
    return OnnxEngine(DEFAULT_ONNX, threads=1), TorchEngine(load_weights())


def test_shipped_onnx_agrees_with_the_shipped_safetensors(engines):
    onnx_engine, torch_engine = engines
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 48, 64), dtype=np.float32)
    guide = np.zeros((2, 2, 48, 64), np.float32)
    guide[1, 0] = rng.random((48, 64)) > 0.5
    guide[1, 1] = 1
    a_out, b_out = onnx_engine(x, guide), torch_engine(x, guide)
    assert a_out._fields == b_out._fields == ("sr", "lr", "mask", "matte")  # --shared takes the network's matte too
    for a, b in zip(a_out, b_out, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-3
    picture = np.asarray(anime_picture(233, 330, seed=5), np.float32) / 255.0
    out_onnx = restore(picture, onnx_engine).rgb
    out_torch = restore(picture, torch_engine).rgb
    assert out_onnx.shape == (660, 466, 3)
    assert np.abs(out_onnx - out_torch).max() < 1e-3


def test_onnx_metadata_describes_the_model(engines):
    onnx_engine, torch_engine = engines
    cfg = torch_engine.model.config
    assert (onnx_engine.scale, onnx_engine.multiple, onnx_engine.border, onnx_engine.guide_channels) == (
        cfg.scale, cfg.multiple, cfg.border, cfg.guide_channels)
    assert onnx_engine.info["step"] > 0 and "psnr" in onnx_engine.info["val"]


def test_uint8_output_is_the_rounded_float_output(engines):
    picture = np.asarray(anime_picture(90, 70, seed=2), np.float32) / 255.0
    f32 = restore(picture, engines[0], tile=64).rgb
    u8 = restore(picture, engines[0], tile=64, dtype=np.uint8).rgb
    assert u8.dtype == np.uint8
    assert np.abs(u8.astype(np.float32) - f32 * 255).max() <= 0.5 + 1e-3


def test_load_engine_picks_by_file_and_explains_mistakes(tmp_path):
    assert isinstance(load_engine(), OnnxEngine)
    assert isinstance(load_engine(DEFAULT_ONNX.with_suffix(".safetensors")), TorchEngine)
    with pytest.raises(ValueError, match="engine"):
        load_engine(engine="tensorrt")
    with pytest.raises(FileNotFoundError):
        load_engine(tmp_path / "missing.onnx")
    not_ours = tmp_path / "plain.onnx"
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), not_ours)
    with pytest.raises(ValueError, match="desample export"):
        load_engine(not_ours)


BLOCK_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch.") or name == "safetensors.torch":
            raise ImportError("torch is not installed (blocked by the test)")
sys.meta_path.insert(0, NoTorch())
from desample.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules, "torch was imported"
sys.exit(code)
"""


def test_clean_runs_without_torch(tmp_path):
    src = tmp_path / "in.png"
    anime_picture(60, 44, seed=3).save(src)
    out = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "clean", str(src), "-o", str(out), "--threads", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (120, 88)
    # the same picture as restore() on PyTorch gives, within rounding (a PNG: no JPEG noise reduction)
    same = restore(np.asarray(Image.open(src), np.float32) / 255.0, TorchEngine(load_weights()), denoise=0.0).rgb
    # (1.5: the 8-bit output is rounded once before the back-projection of denoise=0 reads it, once after)
    assert np.abs(np.asarray(Image.open(out), np.float32) - same * 255).max() <= 1.5
    help_proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "--help"], capture_output=True, text=True, timeout=600)
    assert "clean" in help_proc.stdout


def test_plain_install_does_not_require_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plain = " ".join(project["dependencies"])
    assert "torch" not in plain and "onnxruntime" in plain
    assert any(d.startswith("torch==") for d in project["optional-dependencies"]["train"])
