"""One training step in fp32 against the same step with the trunk in bf16 (desample.train.precision):
time, loss and how closely the bf16 gradient follows the fp32 one, on procedural pictures.

    python research/measure_bf16_step.py [THREADS] [WEIGHTS]

Stop a background training first (kill -STOP PID) or the times mean little.
"""

import copy
import sys
import time

import numpy as np
import torch

from desample.data.pairs import CropSampler
from desample.data.procedural import anime_picture
from desample.model.weights import load_weights
from desample.train.config import TrainConfig
from desample.train.loop import losses
from desample.train.precision import autocast, cpu_has_native_bf16

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
weights = sys.argv[2] if len(sys.argv) > 2 else None
torch.set_num_threads(threads)
cfg = TrainConfig()
fp32 = load_weights(weights).train()
bf16 = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
sampler = CropSampler([anime_picture(480, 480, seed=i) for i in range(6)], np.random.default_rng(0), pool_size=6)


def step(model, batch, use_bf16):
    model.zero_grad()
    t = time.perf_counter()
    with autocast(use_bf16):
        out = model(batch["x"], batch["guide"])
    loss = losses(out, batch, cfg, 2)["loss"]
    loss.backward()
    return time.perf_counter() - t, loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])


print(f"CPU with bf16 instructions: {cpu_has_native_bf16()}; {threads} thread(s); batch 12 of 128 px crops")
times = {False: [], True: []}
for _ in range(4):
    batch = {k: torch.from_numpy(v) for k, v in sampler.batch(12, 128).items()}
    cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    t32, l32, g32 = step(fp32, batch, False)
    t16, l16, g16 = step(bf16, cl, True)
    times[False].append(t32)
    times[True].append(t16)
    cos = torch.nn.functional.cosine_similarity(g32, g16, dim=0).item()
    print(f"loss fp32 {l32:.5f} bf16 {l16:.5f}; gradient cosine {cos:.4f}; seconds {t32:.2f} vs {t16:.2f}")
print(f"fp32 / bf16 time, median: {np.median(times[False]) / np.median(times[True]):.2f}x")
