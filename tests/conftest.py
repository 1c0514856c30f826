import numpy as np
import pytest
import torch

from desample.model.net import DesampleNet, NetConfig
from desample.model.weights import save_weights

TINY = NetConfig(widths=(8, 8, 12, 16), blocks=(1, 1, 1, 1), sr_width=8)


def randomised(model: DesampleNet, seed: int = 0) -> DesampleNet:
    """Give every parameter (the zero-initialised heads included) random values, so outputs depend on them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> str:
    """A small random model on disk, for CLI tests that need weights but not quality."""
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(randomised(DesampleNet(TINY)), path)
    return str(path)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _one_thread():
    # Test tensors are tiny: one thread avoids start-up costs and fighting a training job for the cores.
    torch.set_num_threads(1)
