"""Many requests at once against a running `desample serve`: every one must answer (200 or 503), none
may hang, and the server's memory must stay bounded.

    python -m desample.web.loadtest --url http://127.0.0.1:8000 -n 20 --pid $(pgrep -f "desample serve")
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


def picture_bytes(width: int = 233, height: int = 330, seed: int = 0) -> bytes:
    """A stamped procedural preview as JPEG, the usual input."""
    import numpy as np

    from ..data.procedural import anime_picture
    from ..stamps.synthesis import apply_stamp, make_stamp

    rng = np.random.default_rng(seed)
    rgb = np.asarray(anime_picture(width, height, seed=seed), np.float32) / 255.0
    stamped = apply_stamp(rgb, make_stamp(height, width, rng, "word"))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((stamped * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def hammer(url: str, n: int = 20, data: bytes | None = None, timeout: float = 120.0, pid: int | None = None) -> dict:
    """n requests at the same moment to {url}/api/clean. Returns status counts, latencies, errors and
    the server's peak RSS (sampled every 50 ms) when its pid is given."""
    import httpx

    data = data if data is not None else picture_bytes()
    start = threading.Barrier(n)
    peak = {"rss_before_mb": rss_mb(pid) if pid else None, "rss_peak_mb": 0.0}
    done = threading.Event()

    def watch():
        while pid and not done.is_set():
            peak["rss_peak_mb"] = max(peak["rss_peak_mb"], rss_mb(pid))
            time.sleep(0.05)

    def one(i: int):
        start.wait()
        t = time.perf_counter()
        try:
            r = httpx.post(f"{url}/api/clean", files={"file": (f"p{i}.jpg", data, "image/jpeg")}, data={"scale": "2"}, timeout=timeout)
            return r.status_code, time.perf_counter() - t, r.headers.get("Retry-After")
        except httpx.HTTPError as e:
            return type(e).__name__, time.perf_counter() - t, None

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    done.set()
    watcher.join()
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": n, "statuses": statuses,
        "slowest_s": round(max(s for _, s, _ in results), 2),
        "retry_after": sorted({ra for _, _, ra in results if ra}),
        **({k: round(v, 1) for k, v in peak.items()} if pid else {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("-n", type=int, default=20, help="requests sent at the same moment")
    p.add_argument("--pid", type=int, help="the server's process id, to follow its memory")
    p.add_argument("--size", default="233x330", help="picture size WxH")
    args = p.parse_args(argv)
    w, h = map(int, args.size.split("x"))
    report = hammer(args.url, args.n, picture_bytes(w, h), pid=args.pid)
    print(json.dumps(report, indent=2))
    ok = set(report["statuses"]) <= {"200", "503"}
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
