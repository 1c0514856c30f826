import pytest

from desample.cli import main

pytest.importorskip("onnxruntime")


def test_export_matches_pytorch(tiny_weights, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "-o", str(out), "--model", tiny_weights]) == 0
    assert out.stat().st_size > 1000
    assert "max |ONNX Runtime - PyTorch|" in capsys.readouterr().out
