"""Call a running `desample serve` from a script: clean one picture, optionally with a painted mask.

    desample serve &                       # in another terminal
    python examples/web_api.py in.jpg out.png [--mask painted.png] [--url http://127.0.0.1:8000]

Only the standard library: the API is a multipart POST to /api/clean that answers a PNG (503 with
Retry-After when the server is busy: wait and try again).
"""

import argparse
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def _multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def clean(url: str, picture: Path, mask: Path | None = None, scale: int = 2, tries: int = 10) -> tuple[bytes, dict]:
    files = {"file": picture, **({"mask": mask} if mask else {})}
    body, kind = _multipart({"scale": str(scale)}, files)
    for _ in range(tries):
        request = urllib.request.Request(f"{url}/api/clean", data=body, headers={"Content-Type": kind})
        try:
            with urllib.request.urlopen(request) as answer:
                facts = {k[len("x-"):]: v for k, v in answer.headers.items() if k.lower().startswith("x-")}
                return answer.read(), facts
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise SystemExit(f"{picture}: {e.code} {json.loads(e.read()).get('detail', '')}") from None
            time.sleep(float(e.headers.get("Retry-After", 5)))  # busy: the server says when to come back
    raise SystemExit("the server stayed busy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("picture", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--mask", type=Path)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    args = ap.parse_args()
    png, facts = clean(args.url, args.picture, args.mask, args.scale)
    args.output.write_bytes(png)
    print(f"wrote {args.output}: {facts}")


if __name__ == "__main__":
    main()
