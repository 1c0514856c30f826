"""`desample bench --speed`: latency, throughput, start-up and peak memory, peers in the same run.

    desample bench --speed --out docs/speed --threads 2

Every number is a median of `repeats` runs. Pictures are procedural (no data needed). The
start-up and memory numbers come from GNU time (`/usr/bin/time -v`) around whole `desample clean`
commands, as a user would run them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..core import restore
from ..data.procedural import anime_picture
from ..engine.runtime import load_engine


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _picture(w: int, h: int, seed: int = 7) -> np.ndarray:
    return np.asarray(anime_picture(w, h, seed=seed), np.float32) / 255.0


def engine_latency(threads: int, repeats: int, sizes=((233, 330), (500, 700))) -> list[dict]:
    """Warm restore() at 2x on each engine: seconds and output megapixels per second."""
    rows = []
    for name in ("onnx", "torch"):
        try:
            engine = load_engine(engine=name, threads=threads)
        except (ValueError, ImportError) as e:
            rows.append({"method": f"desample ({name})", "error": str(e)})
            continue
        for w, h in sizes:
            pic = _picture(w, h)
            s = _median_seconds(lambda e=engine, p=pic: restore(p, e, dtype=np.uint8), repeats)
            rows.append({"method": f"desample ({name})", "input": f"{w}x{h}", "seconds": s, "out_mpix_per_s": 4 * w * h / 1e6 / s})
    return rows


def peer_latency(threads: int, repeats: int, sizes=((233, 330), (500, 700))) -> list[dict]:
    from .methods import peer_methods

    rows = []
    for name, fn in peer_methods(threads).items():
        if name not in ("waifu2x_upconv7", "realcugan"):
            continue
        for w, h in sizes:
            pic = _picture(w, h)
            s = _median_seconds(lambda f=fn, p=pic: f(p), repeats)
            rows.append({"method": name, "input": f"{w}x{h}", "seconds": s, "out_mpix_per_s": 4 * w * h / 1e6 / s})
    return rows


def tile_sweep(threads: int, repeats: int, tiles=(192, 256, 384, 512, 768), size=(1000, 1400)) -> list[dict]:
    """ONNX Runtime seconds per picture against the tile size (the default is chosen from this)."""
    engine = load_engine(engine="onnx", threads=threads)
    pic = _picture(*size)
    return [{"tile": t, "seconds": _median_seconds(lambda t=t: restore(pic, engine, tile=t, dtype=np.uint8), repeats)} for t in tiles]


def _gnu_time(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a whole command under /usr/bin/time -v."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    h, m, s = (float(g) if g else 0.0 for g in wall.groups())
    return 3600 * h + 60 * m + s, int(rss.group(1)) / 1024


def command_costs(threads: int, repeats: int, big: int = 4000) -> list[dict]:
    """Cold `desample clean` on a 233x330 preview and on a big x big picture: wall time and peak RSS."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small.png", Path(tmp) / "large.png"
        anime_picture(233, 330, seed=3).save(small)
        anime_picture(big, big, seed=4).save(large)
        exe = [sys.executable, "-m", "desample.cli"]
        for label, src, n in (("233x330", small, repeats), (f"{big}x{big}", large, 1)):
            for engine in ("onnx", "torch"):
                runs = [_gnu_time([*exe, "clean", str(src), "-o", str(Path(tmp) / "out.png"), "-q",
                                   "--threads", str(threads), "--engine", engine]) for _ in range(n)]
                rows.append({"command": f"desample clean {label} --engine {engine}", "runs": n,
                             "wall_s": float(np.median([r[0] for r in runs])), "peak_rss_mb": float(np.median([r[1] for r in runs]))})
    return rows


def import_seconds(repeats: int) -> dict:
    """Cold `desample --help` and the import of torch, for scale."""
    out = {}
    for label, code in (("desample --help", "import sys; sys.argv=['desample','--help']; from desample.cli import main; main()"),
                        ("import torch", "import torch")):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], capture_output=True)
            times.append(time.perf_counter() - t0)
        out[label] = float(np.median(times))
    return out


def run_speed(out: Path, threads: int, repeats: int = 5) -> dict:
    results = {"threads": threads, "repeats": repeats, "cpu": _cpu_name()}
    print("warm latency ...", flush=True)
    results["latency"] = engine_latency(threads, repeats) + peer_latency(threads, repeats)
    print("tile sweep ...", flush=True)
    results["tiles"] = tile_sweep(threads, max(3, repeats // 2))
    print("whole commands under GNU time ...", flush=True)
    results["commands"] = command_costs(threads, repeats)
    results["startup"] = import_seconds(repeats)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "speed.md").write_text(speed_markdown(results))
    return results


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores visible"
    except OSError:
        pass
    return "unknown"


def speed_markdown(r: dict) -> str:
    lines = [f"Measured with `desample bench --speed --threads {r['threads']}` on {r['cpu']}; medians of {r['repeats']} runs.", "",
             "**Warm, 2x (stamp removal + enlargement), in one process:**", "",
             "| method | input | seconds | output MP/s |", "|---|---|---|---|"]
    for row in r["latency"]:
        if "error" in row:
            lines.append(f"| {row['method']} | | {row['error']} | |")
        else:
            lines.append(f"| {row['method']} | {row['input']} | {row['seconds']:.3f} | {row['out_mpix_per_s']:.2f} |")
    lines += ["", "**Tile size (ONNX Runtime, 1000x1400 input):**", "", "| tile | seconds |", "|---|---|"]
    lines += [f"| {t['tile']} | {t['seconds']:.3f} |" for t in r["tiles"]]
    lines += ["", "**Whole commands, cold (GNU time):**", "", "| command | wall s | peak RSS MB |", "|---|---|---|"]
    lines += [f"| `{c['command']}` | {c['wall_s']:.2f} | {c['peak_rss_mb']:.0f} |" for c in r["commands"]]
    lines += ["", "**Start-up:** " + ", ".join(f"`{k}` {v:.2f} s" for k, v in r["startup"].items()), ""]
    return "\n".join(lines)
