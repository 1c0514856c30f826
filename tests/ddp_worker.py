"""One rank of the DDP equivalence test (tests/test_distributed.py runs world 1 in its own process, world 2 under torchrun).

Every process draws the same global batches (same seed), cuts them into world x accum
micro-batches and trains on its own share through `train_step`; rank 0 saves the weights.
    python tests/ddp_worker.py OUT.pt ACCUM          (world 1)
    torchrun --nproc_per_node=2 tests/ddp_worker.py OUT.pt ACCUM
"""

import sys

import numpy as np
import torch

from desample.data.pairs import CropSampler
from desample.data.procedural import anime_picture
from desample.model.net import DesampleNet, NetConfig
from desample.train.config import TrainConfig
from desample.train.distributed import init_distributed
from desample.train.loop import train_step

STEPS, MICRO = 3, 2  # optimiser steps; samples per micro-batch


def main(out: str, accum: int) -> None:
    torch.set_num_threads(1)
    d = init_distributed()
    torch.manual_seed(0)
    model = DesampleNet(NetConfig(widths=(8, 8, 12, 16), blocks=(1, 1, 1, 1), sr_width=8))
    with torch.no_grad():  # the heads start at zero: give them values, so every weight gets a gradient
        for p in model.parameters():
            p.add_(torch.randn(p.shape) * 0.02)
    net = d.wrap(model.train())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0)
    cfg = TrainConfig(data=[])
    sampler = CropSampler([anime_picture(128, 128, seed=i) for i in range(3)], np.random.default_rng(0), pool_size=3)
    n_micro = d.world * accum
    for _ in range(STEPS):
        micro = [{k: torch.from_numpy(v) for k, v in sampler.batch(MICRO, 24).items()} for _ in range(n_micro)]
        train_step(net, opt, micro[d.rank * accum:(d.rank + 1) * accum], cfg, scale=2)
    if d.main:
        torch.save(model.state_dict(), out)
    d.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
