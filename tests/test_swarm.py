"""A volunteer swarm on 127.0.0.1: a late peer catches up, a killed one doesn't stop the others."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STEPS = 40


def _peer(tmp_path: Path, name: str, *peers: str) -> subprocess.Popen:
    cfg = {"data": [], "procedural": 4, "steps": STEPS, "batch": 2, "patch": 48, "pool": 3, "refresh": 1,
           "val_every": 1000, "ckpt_every": 10, "threads": 1, "swarm": True, "swarm_host": "127.0.0.1",
           "swarm_batch": 8, "matchmaking_time": 1.0, "averaging_timeout": 10.0, "run_id": f"test-{os.getpid()}",
           "out": str(tmp_path / name)}
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "desample", "train", "--config", str(tmp_path / f"{name}.json")]
    if peers:
        cmd += ["--initial-peers", *peers]
    log = open(tmp_path / f"{name}.txt", "w")
    # Its own session: hivemind runs the DHT and averagers in child processes, which a SIGKILL of the
    # peer's main process would leave behind; the whole group goes (as when a machine vanishes).
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            start_new_session=True)


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _steps(tmp_path: Path, name: str) -> list[dict]:
    path = tmp_path / name / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait(cond, what: str, timeout: float = 600) -> None:  # liveness guards, not speed checks
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.2)


# Slow: three hivemind peers on two cores; a slow shared machine did not finish it within CI's time.
# Run by hand: pytest -m slow tests/test_swarm.py
@pytest.mark.slow
def test_two_peers_train_together_and_end_with_equal_weights(tmp_path):
    pytest.importorskip("hivemind")  # here, not at import: collecting the default run skips its start-up cost
    first = _peer(tmp_path, "a")
    procs = [first]
    try:
        address = tmp_path / "a" / "peer_addresses.txt"
        _wait(lambda: address.exists() and address.read_text().strip(), "the first peer printed no address")
        _wait(lambda: len(_steps(tmp_path, "a")) >= 3, "the first peer made no progress alone")
        peers = address.read_text().split()
        late = _peer(tmp_path, "b", *peers)
        leaver = _peer(tmp_path, "c", *peers)
        procs += [late, leaver]
        _wait(lambda: len(_steps(tmp_path, "c")) >= 2, "the third peer never trained")
        leaver.send_signal(signal.SIGKILL)  # leaves without a word (its hivemind children go at the end, below)
        for p in (first, late):
            p.wait(timeout=900)
    finally:
        for p in procs:
            _kill_group(p)  # and whatever children they left
    out = {n: (tmp_path / f"{n}.txt").read_text() for n in "ab"}
    assert first.returncode == 0 and late.returncode == 0, out["a"][-2000:] + out["b"][-2000:]
    joined_at = int(out["b"].split("swarm step ")[1].split(";")[0])
    assert joined_at >= 3, out["b"][-2000:]  # the late peer downloaded the swarm's state instead of starting over
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=True) for n in "ab")
    assert a["step"] == b["step"] == STEPS
    gap = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    # Identical (measured 1.5e-8) when every averaging round found the group. When a peer's last
    # round can't (the other was already leaving), it takes that step on its own gradients: one
    # Adam step of lr 3e-4 apart, 6e-4 measured in 1 run of 8 under load. Training from different
    # pictures alone would put them ~0.3-0.7 apart.
    assert gap < 2e-3, gap
    # Both made progress: the late peer trained on its own pictures in the swarm's last steps too.
    assert joined_at < STEPS and _steps(tmp_path, "b")[-1]["samples"] > 0 and _steps(tmp_path, "a")[-1]["samples"] > 0
