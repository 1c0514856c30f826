"""`desample serve`: one page and a JSON API around `api.clean()`, the request path the CLI runs.

Inference is CPU-heavy, so requests pass a gate first: a fixed number of workers clean pictures, a
bounded number wait, and past that the server answers 503 with Retry-After before reading the
upload, so memory cannot grow with the number of callers. Uploads are capped in bytes (413) and
pictures in pixels from their header, before decoding (413). The server writes nothing but
Python's spooled uploads, which go to its own temporary folder, removed when it stops.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..api import CleanOptions, clean, read_mask
from ..core import SCALES
from ..engine.runtime import load_engine
from ..imageio import ImageLoadError, TooLargeError, is_lossless, load_image, to_pil

STATIC = Path(__file__).parent / "static"
API_PATHS = ("/api/clean", "/api/estimate")


@dataclass
class ServeSettings:
    """What one server allows. Defaults suit a small machine: one picture at a time, 8 waiting."""

    model: str | None = None  # .onnx or .safetensors; None = the shipped model
    engine: str = "auto"
    threads: int = 0  # CPU threads per picture; 0 = all cores
    workers: int = 1  # pictures cleaned at the same time
    queue: int = 8  # requests that may wait for a worker; past them: 503
    retry_after: int = 5  # seconds a 503 tells the caller to wait
    max_upload_mb: float = 30.0  # whole request body
    max_pixels: int = 16_000_000  # input picture (e.g. 4000x4000), checked from the header
    max_output_pixels: int = 64_000_000  # output picture, so 4x of a big input is refused up front
    max_estimate_pictures: int = 16
    tile: int = 512


class Gate:
    """At most `size` requests inside; the rest are turned away at once (no unbounded queue).

    Used from the event loop only, so a plain counter is enough."""

    def __init__(self, size: int):
        self.size, self.inside = size, 0

    def try_enter(self) -> bool:
        if self.inside >= self.size:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1


class Admission:
    """ASGI middleware for the API's POSTs, before their body is read: a declared size over the limit
    gets 413, past the gate 503 + Retry-After; then the bytes that arrive are counted, for bodies
    that declare no size or lie about it."""

    def __init__(self, app, gate: Gate, settings: ServeSettings):
        self.app, self.gate, self.settings = app, gate, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in API_PATHS:
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.settings.max_upload_mb * 1024 * 1024:
            return await JSONResponse({"detail": too_large_text(self.settings)}, status_code=413)(scope, receive, send)
        if not self.gate.try_enter():
            response = JSONResponse(
                {"detail": f"the server is busy with {self.gate.inside} request(s); try again in {self.settings.retry_after} s"},
                status_code=503, headers={"Retry-After": str(self.settings.retry_after)})
            return await response(scope, receive, send)
        limit, seen = self.settings.max_upload_mb * 1024 * 1024, 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI passes an HTTPException raised while reading the body on as it is
                raise HTTPException(413, too_large_text(self.settings))
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self.gate.leave()


def too_large_text(settings: ServeSettings) -> str:
    return f"the upload is too large: this server takes at most {settings.max_upload_mb:g} MB per request"


def download_name(filename: str | None, suffix: str) -> str:
    """A safe download name from the client's file name: its stem only, no folders, no odd characters."""
    stem = Path((filename or "picture").replace("\\", "/").split("/")[-1]).stem
    stem = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", stem)).strip("._") or "picture"
    return f"{stem[:100]}{suffix}.png"


def display_name(filename: str | None) -> str:
    """The client's file name as messages show it: no folders, no control characters."""
    base = (filename or "the upload").replace("\\", "/").split("/")[-1]
    return "".join(c for c in base if c.isprintable())[:120] or "the upload"


def _content_disposition(name: str) -> str:
    from urllib.parse import quote

    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def _png(rgb: np.ndarray, alpha: np.ndarray | None) -> bytes:
    buf = io.BytesIO()
    to_pil(rgb, alpha).save(buf, "PNG", compress_level=3)  # level 3: much faster than the default 6, a little bigger
    return buf.getvalue()


def _then_trim(fn, *args):
    """fn(*args), then hand the freed memory back to the system: a server that lives for days
    otherwise keeps the high-water mark of every picture size it met (glibc's per-thread arenas)."""
    try:
        return fn(*args)
    finally:
        _malloc_trim()


def _malloc_trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl): nothing to trim
        return None


_LIBC = _load_libc()


class Cleaner:
    """The engine and the worker pool; what the endpoints run, off the event loop."""

    def __init__(self, settings: ServeSettings, engine=None):
        self.settings = settings
        self.engine = engine if engine is not None else load_engine(settings.model, settings.engine, settings.threads)
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="desample-worker")

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, _then_trim, fn, *args)

    def _load(self, data: bytes, name: str):
        try:
            return load_image(io.BytesIO(data), as_uint8=True, max_pixels=self.settings.max_pixels, name=name)
        except TooLargeError as e:
            raise HTTPException(413, str(e)) from e
        except ImageLoadError as e:
            raise HTTPException(422, str(e)) from e

    def clean(self, data: bytes, name: str, scale: int, denoise: float | None, detect: bool, inpaint: bool,
              mask_data: bytes | None, stamp_data: bytes | None, tta: bool = False) -> tuple[bytes, dict]:
        rgb, alpha = self._load(data, name)
        h, w = rgb.shape[:2]
        if h * w * scale * scale > self.settings.max_output_pixels:
            raise HTTPException(413, f"{name}: {w}x{h} at {scale}x would be {w * scale}x{h * scale}, more than the "
                                     f"{self.settings.max_output_pixels / 1e6:.0f} MP this server makes; choose a smaller scale")
        mask = stamp = None
        if mask_data:
            try:
                mask = read_mask(mask_data, max_pixels=self.settings.max_pixels)  # None: an empty painting is no mask
            except TooLargeError as e:
                raise HTTPException(413, str(e)) from e
            except ImageLoadError as e:
                raise HTTPException(422, str(e)) from e
        if stamp_data:
            from ..stamps.estimate import load_stamp

            try:
                stamp = load_stamp(io.BytesIO(stamp_data))
            except (OSError, ValueError) as e:
                raise HTTPException(422, f"the stamp file is not an RGBA stamp from /api/estimate ({e})") from e
        start = time.perf_counter()
        options = CleanOptions(scale=scale, denoise=denoise, detect=detect, inpaint=inpaint, tta=tta, tile=self.settings.tile)
        result = clean((rgb, alpha), self.engine, options, mask=mask, stamp=stamp, lossless=is_lossless(io.BytesIO(data)))
        seconds = time.perf_counter() - start
        png = _png(result.rgb, result.alpha)
        info = {"width": result.rgb.shape[1], "height": result.rgb.shape[0],
                "stamp_coverage": round(result.stamp_coverage, 4), "seconds": round(seconds, 3)}
        return png, info

    def estimate(self, files: list[tuple[bytes, str]]) -> tuple[bytes, dict]:
        from ..shared import estimate_shared, not_sharing, why_not_used
        from ..stamps.estimate import save_stamp

        pictures = [self._load(data, name)[0] for data, name in files]
        try:
            est = estimate_shared(pictures, self.engine, self.settings.tile)
        except ValueError as e:
            raise HTTPException(422, f"no shared stamp found: {e}") from e
        buf = io.BytesIO()
        save_stamp(buf, est)
        # why_not: what `clean --shared` decides, use the stamp (None) or remove blind, and why (shared.why_not_used)
        return buf.getvalue(), {"width": est.matte.shape[1], "height": est.matte.shape[0],
                                "coverage": round(float((est.matte > 0.05).mean()), 4),
                                "misfit": None if est.misfit is None else round(est.misfit, 3),
                                "uncovered": None if est.uncovered is None else round(est.uncovered, 3),
                                "why_not": why_not_used(est), "not_sharing": not_sharing(est)}


def create_app(settings: ServeSettings | None = None, engine=None, own_tempdir: bool = False) -> FastAPI:
    """The application. engine: an engine or model to use instead of loading `settings.model`.

    own_tempdir: the process is this server alone (`desample serve`): point Python's temporary
    folder, where the multipart parser spools uploads over 1 MB, at the server's own folder for its
    life. Off for an app embedded in another process, whose temporary folder it must not move.
    """
    settings = settings or ServeSettings()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["tmp"] = Path(tempfile.mkdtemp(prefix="desample-serve-"))
        previous = tempfile.tempdir
        if own_tempdir:
            tempfile.tempdir = str(state["tmp"])
        state["cleaner"] = Cleaner(settings, engine)
        try:
            yield
        finally:
            state["cleaner"].pool.shutdown(wait=True, cancel_futures=True)
            if own_tempdir:
                tempfile.tempdir = previous
            shutil.rmtree(state["tmp"], ignore_errors=True)

    app = FastAPI(
        title="desample", version=__version__, lifespan=lifespan,
        description="Remove SAMPLE watermarks from anime pictures and enlarge them 2x/4x. "
                    "The same `api.clean()` as `desample clean`.",
    )
    app.state.settings = settings
    app.state.runtime = state
    gate = Gate(settings.workers + settings.queue)
    app.state.gate = gate
    app.add_middleware(Admission, gate=gate, settings=settings)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info", summary="What this server does and allows")
    async def info() -> dict:
        return {"name": "desample", "version": __version__, "scales": list(SCALES),
                "limits": {k: v for k, v in asdict(settings).items() if k.startswith("max_") or k in ("workers", "queue")},
                "busy": gate.inside}

    @app.post("/api/clean", summary="Remove the stamp and enlarge one picture; answers the PNG",
              response_class=Response, responses={200: {"content": {"image/png": {}}},
                                                  413: {"description": "upload or picture too large"},
                                                  422: {"description": "not a picture, or a bad option"},
                                                  503: {"description": "busy: try again after Retry-After seconds"}})
    async def clean(
        file: Annotated[UploadFile, File(description="the picture (PNG, JPEG, WebP, GIF, ...)")],
        scale: Annotated[int, Form(description="1 (removal only), 2 or 4")] = 2,
        denoise: Annotated[float | None, Form(ge=0, le=1, description="JPEG noise reduction, 0 (keep the grain) to 1 (full); "
                                                                       "left out: 1 for JPEG/WebP, 0 for lossless pictures")] = None,
        detect: Annotated[bool, Form(description="look for the stamp automatically")] = True,
        mask: Annotated[UploadFile | None, File(description="white where the stamp is (painted by hand), any size")] = None,
        inpaint: Annotated[bool, Form(description="repaint all of the mask's pixels from their surroundings, "
                                                  "then refine (an opaque stamp, e.g. a logo); false: they start from "
                                                  "the network's own removal, only those it sees opaque are repainted")] = False,
        stamp: Annotated[UploadFile | None, File(description="a shared stamp from /api/estimate (RGBA)")] = None,
        tta: Annotated[bool, Form(description="also run on the mirrored picture and average: twice the time, ~+0.1 dB")] = False,
    ):
        if scale not in SCALES:
            raise HTTPException(422, f"scale must be one of {', '.join(map(str, SCALES))}, not {scale}")
        data = await file.read()
        if not data:
            raise HTTPException(422, f"{display_name(file.filename)}: the file is empty")
        mask_data = await mask.read() if mask is not None else None
        stamp_data = await stamp.read() if stamp is not None else None
        name = display_name(file.filename)
        png, facts = await state["cleaner"].run(state["cleaner"].clean, data, name, scale, denoise, detect, inpaint,
                                                mask_data, stamp_data, tta)
        headers = {"Content-Disposition": _content_disposition(download_name(file.filename, f"_{scale}x")),
                   "X-Output-Width": str(facts["width"]), "X-Output-Height": str(facts["height"]),
                   "X-Stamp-Coverage": str(facts["stamp_coverage"]), "X-Seconds": str(facts["seconds"])}
        return Response(png, media_type="image/png", headers=headers)

    @app.post("/api/estimate", summary="Estimate the stamp that 2 or more pictures share; answers it as an RGBA PNG",
              response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def estimate(files: Annotated[list[UploadFile], File(description="2 or more pictures carrying the same stamp")]):
        if not 2 <= len(files) <= settings.max_estimate_pictures:
            raise HTTPException(422, f"estimating a shared stamp needs 2 to {settings.max_estimate_pictures} pictures, "
                                     f"not {len(files)}")
        items = [(await f.read(), display_name(f.filename)) for f in files]
        png, facts = await state["cleaner"].run(state["cleaner"].estimate, items)
        return Response(png, media_type="image/png", headers={
            "X-Stamp-Width": str(facts["width"]), "X-Stamp-Height": str(facts["height"]),
            "X-Stamp-Coverage": str(facts["coverage"]), "X-Stamp-Misfit": str(facts["misfit"]),
            "X-Stamp-Uncovered": str(facts["uncovered"]),
            "X-Stamp-Explains": "false" if facts["why_not"] else "true", "X-Stamp-Why-Not": facts["why_not"] or "",
            # the uploaded pictures (0-based, in order) that do not seem to carry it: clean them without it
            "X-Stamp-Not-Sharing": ",".join(str(i) for i in facts["not_sharing"])})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(settings, own_tempdir=True), host=host, port=port, log_level="info")


@contextmanager
def serving_in_thread(app: FastAPI, host: str = "127.0.0.1", timeout: float = 20.0):
    """Run app with uvicorn on a free port in a background thread; yields its URL (tests, screenshots)."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
