"""desample's command line. Heavy imports (torch) happen inside the commands, so --help is instant."""

from __future__ import annotations

import argparse
import functools
import glob
import os
import sys
from pathlib import Path

from .data.sources import IMAGE_EXTENSIONS

TILE = 512  # input pixels per tile side; docs/speed/speed.md has the measurement behind it
# Measured on this project's 2-core machine (1 thread, shipped model, 2x): 5.7 s and 0.34 GB for a
# 1 MP picture, 22 s and 0.47 GB for 4 MP, so a 64 MP scan takes ~6 min and ~3 GB; beyond that a
# picture is more likely a mistake or an attack than art. The output's limit (4x the input's: the
# 2x of the largest input) keeps --scale 4 at 16 MP in.
MAX_MEGAPIXELS = 64
PROGRESS_FROM_PIXELS = 2_000_000  # bigger pictures show their own tile progress (a few seconds or more each)


def _expand_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """[(file, path relative to its root)] from files, folders (recursive) and globs."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        paths = [Path(p) for p in sorted(glob.glob(item))] if any(c in item for c in "*?[") else [Path(item)]
        if not paths:
            raise FileNotFoundError(f"no file matches {item!r}")
        for p in paths:
            if p.is_dir():
                for dirpath, dirnames, filenames in os.walk(p):
                    dirnames.sort()
                    for name in sorted(filenames):
                        f = Path(dirpath) / name
                        if f.suffix.lower() in IMAGE_EXTENSIONS:
                            found.append((f, f.relative_to(p)))
            elif p.exists():
                found.append((p, Path(p.name)))
            else:
                raise FileNotFoundError(f"{p} does not exist")
    return found


def _output_paths(pairs: list[tuple[Path, Path]], output: Path) -> list[Path]:
    """One PNG per input. Several inputs (or a folder) -> `output` is a folder; one file -> a file unless a folder."""
    single_file = len(pairs) == 1 and pairs[0][1] == Path(pairs[0][0].name) and not output.is_dir() and output.suffix
    if single_file:
        return [output]
    outs, seen = [], set()
    for _, rel in pairs:
        out = output / rel.with_suffix(".png")
        if out in seen:  # a.jpg and a.png side by side: keep both, the second as a.png.png / a.jpg.png
            out = output / rel.with_name(rel.name + ".png")
        seen.add(out)
        outs.append(out)
    return outs


def _mask_paths(outputs: list[Path], inputs_resolved: set[Path]) -> dict[Path, Path]:
    """{output: where its stamp mask goes}: NAME.mask.png beside NAME.png, never over an input or an output."""
    taken = inputs_resolved | {o.resolve() for o in outputs}
    paths = {}
    for out in outputs:
        path = out.with_name(out.stem + ".mask.png")
        if path.resolve() in taken:
            raise ValueError(f"--save-mask would write {path} over an input or another output; choose another -o")
        paths[out] = path
    return paths


def cmd_clean(args) -> int:
    from tqdm import tqdm

    from .api import CleanOptions, clean, read_mask
    from .engine.runtime import load_engine
    from .imageio import ImageLoadError, is_lossless, load_image, save_image

    options = CleanOptions(scale=args.scale, denoise=args.denoise, detect=not args.no_detect, inpaint=args.inpaint,
                           tta=args.tta, tile=args.tile)
    pairs = _expand_inputs(args.inputs)
    if not pairs:
        print("no pictures found in the inputs", file=sys.stderr)
        return 2
    outputs = _output_paths(pairs, Path(args.output))
    inputs_resolved = {p.resolve() for p, _ in pairs}
    mask_paths = _mask_paths(outputs, inputs_resolved) if args.save_mask else {}
    engine = load_engine(args.model, args.engine, args.threads)
    user_mask = read_mask(args.mask) if args.mask else None
    if args.mask and user_mask is None:
        print(f"warning: {args.mask} is empty (nothing painted): ignored", file=sys.stderr)
    max_pixels, limit_hint = _pixel_limit(args)
    known, offsets = _known_stamp(args, pairs, functools.partial(load_image, max_pixels=max_pixels, hint=limit_hint,
                                                                 refuse_bombs=args.max_megapixels is None), engine)
    failed = 0
    bar = tqdm(list(zip(pairs, outputs, strict=True)), unit="picture", disable=len(pairs) < 2 or args.quiet)
    skipped = 0
    for (src, _), dst in bar:
        if args.skip_existing and dst.exists() and (not args.save_mask or mask_paths[dst].exists()):
            skipped += 1  # outputs are written atomically: one that exists is complete
            continue
        try:
            if dst.resolve() in inputs_resolved:
                raise ValueError(f"output {dst} would overwrite an input; choose another -o")
            rgb, alpha = load_image(src, as_uint8=True, max_pixels=max_pixels, refuse_bombs=args.max_megapixels is None,
                                    hint=limit_hint)
            # --shared: None for a picture that does not seem to carry the set's stamp (cleaned blind)
            uses_stamp = known is not None and not (src in offsets and offsets[src] is None)
            with _tile_bar(src, rgb.shape, args.quiet) as progress:
                result = clean((rgb, alpha), engine, options, mask=user_mask, stamp=known if uses_stamp else None,
                               offset=offsets.get(src), lossless=is_lossless(src), progress=progress)
            del rgb
            save_image(dst, result.rgb, result.alpha)
            if args.save_mask:
                save_image(mask_paths[dst], result.mask)
            if not args.quiet:
                size = f"{result.rgb.shape[1]}x{result.rgb.shape[0]}"
                tqdm.write(f"{src} -> {dst} ({size}, stamp found on {100 * result.stamp_coverage:.1f}% of the input)")
        except (ImageLoadError, ValueError, OSError) as e:
            failed += 1
            why = str(e) if isinstance(e, ImageLoadError) else f"{src}: {e}"  # a load error names its file already
            tqdm.write(f"error: {why}", file=sys.stderr)
    if skipped and not args.quiet:
        print(f"skipped {skipped} picture(s) whose output already exists")
    if failed:
        print(f"{failed} of {len(pairs)} picture(s) failed", file=sys.stderr)
        return 1
    return 0


def _pixel_limit(args) -> tuple[int, str]:
    """(most input pixels allowed at args.scale, how to raise the limit) from --max-megapixels."""
    from PIL import Image

    limit = (args.max_megapixels if args.max_megapixels is not None else MAX_MEGAPIXELS) * 1e6
    if limit <= 0:
        raise ValueError(f"--max-megapixels must be positive, not {args.max_megapixels}")
    # The output's limit: 4x the input's (the 2x of the largest input); at --scale 4 a quarter of it.
    pixels = int(min(limit, 4 * limit / args.scale**2))
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, pixels)  # Pillow's own guard follows an explicit raise
    return pixels, f"raise the limit with --max-megapixels (now {limit / 1e6:g} MP" + (
        f", i.e. {pixels / 1e6:g} MP in at --scale {args.scale})" if args.scale == 4 else ")")


class _tile_bar:
    """A tile progress bar for one big picture (context manager giving restore's progress callback, or None)."""

    def __init__(self, src, shape, quiet: bool):
        self.show = not quiet and shape[0] * shape[1] >= PROGRESS_FROM_PIXELS
        self.name, self.bar, self.passes = Path(src).name, None, 0

    def __enter__(self):
        return self._update if self.show else None

    def _update(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit="tile", leave=False, file=sys.stderr)
        if done <= 1 or self.bar.total != total:  # a new pass
            self.passes += 1
            self.bar.reset(total=total)
            self.bar.set_description(f"{self.name} pass {self.passes}")
        self.bar.n = done
        self.bar.refresh()

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _known_stamp(args, pairs, load_image, engine):
    """(StampEstimate or None, {input: stamp offset, or None to clean it blind}) from --stamp FILE or --shared."""
    if args.stamp and args.shared:
        raise ValueError("give --stamp or --shared, not both")
    if args.stamp:
        from .stamps.estimate import load_stamp

        return load_stamp(args.stamp), {}
    if not args.shared:
        return None, {}
    from .imageio import ImageLoadError
    from .shared import estimate_shared, pictures_using, why_not_used

    if len(pairs) < 2:
        raise ValueError("--shared needs at least 2 pictures that share one stamp")
    pictures, readable = [], []
    for src, rel in pairs:
        try:
            pictures.append(load_image(src)[0])
            readable.append((src, rel))
        except ImageLoadError:
            pass  # left out of the estimate; reported when its turn to be cleaned comes
    if len(pictures) < 2:
        raise ValueError("--shared needs at least 2 readable pictures that share one stamp")
    pairs = readable
    est = estimate_shared(pictures, engine, args.tile)
    reason = why_not_used(est)
    if reason:
        # Measured: such estimates lose to blind removal, by up to 3 dB (shared.POLICY.misfit_limit, POLICY.uncovered_limit).
        print(f"warning: the stamp estimated from these {len(pictures)} pictures {reason}: removing it blind "
              "instead; to use it anyway, write it with `desample estimate` and give it with --stamp", file=sys.stderr)
        return None, {}
    if not args.quiet:
        print(f"estimated the shared stamp from {len(pictures)} pictures: {est.matte.shape[1]}x{est.matte.shape[0]}, "
              f"{100 * (est.matte > 0.02).mean():.0f}% of its box covered" + _misfit_words(est))
    offsets = {}
    for (src, _), off, used in zip(pairs, est.offsets, pictures_using(est), strict=True):
        if not used:
            print(f"warning: {src} does not seem to carry the shared stamp: removing blind there", file=sys.stderr)
        offsets[src] = off if used else None  # None: clean that picture blind
    return est, offsets


def _misfit_words(est) -> str:
    from .shared import POLICY

    return "" if est.misfit is None else f", misfit {est.misfit:.2f} (under {POLICY.misfit_limit}: it explains the pictures)"


def cmd_estimate(args) -> int:
    from .imageio import load_image
    from .shared import not_sharing, why_not_used
    from .stamps.estimate import estimate_stamp, save_stamp

    pairs = _expand_inputs(args.inputs)
    if len(pairs) < 2:
        print("error: estimating a stamp needs at least 2 pictures that share it", file=sys.stderr)
        return 2
    pictures = [load_image(src)[0] for src, _ in pairs]
    if args.unconfirmed:
        est = estimate_stamp(pictures, smooth=args.smooth)
    else:
        from .engine.runtime import load_engine
        from .shared import estimate_shared

        est = estimate_shared(pictures, load_engine(args.model, args.engine, args.threads), smooth=args.smooth)
    save_stamp(args.output, est)
    print(f"wrote {args.output}: stamp {est.matte.shape[1]}x{est.matte.shape[0]}, matte max {est.matte.max():.2f}"
          + _misfit_words(est))
    reason = why_not_used(est)
    if reason:
        print(f"warning: it {reason}; `clean --shared` would remove blind, and `clean --stamp` with it "
              "may do worse than blind removal", file=sys.stderr)
    odd = set(not_sharing(est))
    for i, ((src, _), (oy, ox)) in enumerate(zip(pairs, est.offsets, strict=True)):
        note = " (does not seem to carry it: `clean --shared` removes blind there)" if i in odd else ""
        print(f"  {src}: stamp at x={ox}, y={oy}{note}")
    return 0


def cmd_train(args) -> int:
    from .train.config import TrainConfig

    try:
        from .train.loop import train
    except ImportError as e:
        print(f"error: training needs the extra: pip install -e '.[train]' ({e})", file=sys.stderr)
        return 2

    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    cfg = cfg.updated(overrides)
    from .stamps.fonts import MissingFontError

    try:
        if cfg.swarm:
            from .train.swarm import train_swarm

            train_swarm(cfg)
        else:
            train(cfg)
    except MissingFontError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_bench(args) -> int:
    import shlex

    if args.speed:
        from .bench.speed import run_speed, speed_markdown

        print(speed_markdown(run_speed(Path(args.output), args.threads or os.cpu_count() or 1, args.repeats)))
        return 0
    if args.real:
        from .bench.real import Reference, run_real
        from .engine.runtime import load_engine

        engine = load_engine(args.model, args.engine, args.threads)
        reference = Reference.load(args.reference) if args.reference else None
        widths = [w or None for w in args.real_widths]
        run_real(args.real, engine, reference, widths, Path(args.output), methods=tuple(args.real_methods))
        print(f"wrote {Path(args.output) / 'real.md'} and real.json")
        return 0
    if args.shared:
        from .bench.shared import run_shared, shared_pictures
        from .engine.runtime import load_engine

        sets = args.limit or 4
        engine = load_engine(args.model, args.engine, args.threads)
        run_shared(engine, shared_pictures(args.images, sets * args.shared), args.shared, sets, Path(args.output),
                   stamps=args.shared_stamps)
        return 0

    import torch

    from .bench.methods import build_methods
    from .bench.report import crops_figure, markdown_table, speed_quality_plot
    from .bench.run import build_cases, detector_scores, run_bench, save_results
    from .engine.runtime import load_engine

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)  # bicubic and the PyTorch engine
    engine = load_engine(args.model, args.engine, threads)
    cases = build_cases(args.images, args.limit, args.kinds_per_picture, args.all, args.scale)
    methods = build_methods(engine, args.methods, threads, args.scale)
    print(f"{len(cases)} previews, methods: {', '.join(m.name for m in methods)}")
    results, outputs = run_bench(cases, methods, args.model, threads, memory=not args.no_memory, engine=args.engine)
    if any(m.name.startswith("desample") for m in methods):
        results["detector"] = detector_scores(cases, engine)
    out = Path(args.output)
    save_results(results, out)
    command = "desample bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    table = markdown_table(results, command)
    (out / "report.md").write_text(table)
    # Crops show the pictures themselves: of a user's folder only when asked (they may not be ours to publish).
    crops = not args.images or args.crops
    if crops:
        crops_figure(cases, outputs, out / "crops.png")
    speed_quality_plot(results, out / "speed_quality.png")
    print(table)
    print(f"wrote {out / 'report.md'}, " + (f"{out / 'crops.png'}, " if crops else "")
          + f"{out / 'speed_quality.png'}, {out / 'results.json'}")
    return 0


def cmd_export(args) -> int:
    import numpy as np

    from .data.procedural import anime_picture
    from .engine.onnx_export import export_onnx, max_difference, release_info
    from .model.weights import load_weights
    from .paths import DEFAULT_ONNX, DEFAULT_SAFETENSORS

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        print("error: ONNX export needs the extra: pip install -e '.[train]'", file=sys.stderr)
        return 2
    model = load_weights(args.model)
    info = release_info(args.model or DEFAULT_SAFETENSORS)
    path = export_onnx(model, args.output or DEFAULT_ONNX, info=info)
    from .stamps.synthesis import apply_stamp, classic_sample_stamp

    picture = np.asarray(anime_picture(233, 330, seed=1), np.float32) / 255.0
    checks = [np.random.default_rng(0).random((72, 96, 3)).astype(np.float32), picture,
              apply_stamp(picture, classic_sample_stamp(330, 233))]  # drawn here: works from an installed wheel
    diff = max_difference(model, path, checks)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB); max |ONNX Runtime - PyTorch| = {diff:.2e}")
    return 0 if diff < 1e-3 else 1


def cmd_average(args) -> int:
    from .train.average import main

    return main(args)


def cmd_log(args) -> int:
    from .train.log import curves, read_log, validation_table

    train, val = read_log(args.run)
    print(validation_table(val) if val else "no validation yet")
    if train:
        last = train[-1]
        print(f"last step {last['step']}: loss {last['loss']:.4f}, {last['samples']:,} samples, {last['wall'] / 3600:.2f} h")
    out = Path(args.run).expanduser() / "curves.png" if Path(args.run).expanduser().is_dir() else Path("curves.png")
    curves(train, val, out)
    print(f"wrote {out}")
    return 0


def cmd_serve(args) -> int:
    try:
        from .web.app import ServeSettings, serve
    except ImportError as e:
        print(f"error: the web page needs the `web` extra: pip install -e '.[web]' ({e})", file=sys.stderr)
        return 2
    settings = ServeSettings(model=args.model, engine=args.engine, threads=args.threads, workers=args.workers,
                             queue=args.queue, max_upload_mb=args.max_upload_mb, max_pixels=int(args.max_megapixels * 1e6))
    print(f"desample: open http://{args.host}:{args.port}/ in a browser (the API is described at /docs)")
    serve(args.host, args.port, settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="desample", description="Remove SAMPLE watermarks from anime pictures and enlarge them 2x/4x.")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    # Which network runs, on what: the same options for every command that cleans pictures.
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("--model", default=None, help="model file: .onnx (ONNX Runtime) or .safetensors (PyTorch); "
                        "default: the shipped model")
    engine.add_argument("--engine", default="auto", choices=("auto", "onnx", "torch"),
                        help="auto: ONNX Runtime when installed (the plain install), else PyTorch")
    engine.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = all cores")

    p = sub.add_parser("clean", help="remove the stamp and enlarge pictures", formatter_class=fmt, parents=[engine])
    p.add_argument("inputs", nargs="+", help="picture files, folders (recursive) or globs")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder (one PNG per input, same stem)")
    p.add_argument("--scale", type=int, default=2, choices=(1, 2, 4), help="enlargement; 1 = removal only")
    p.add_argument("--mask", help="a picture of the stamp's mask (white = stamp), used for every input")
    p.add_argument("--stamp", help="a known stamp (RGBA: colour + matte, from `desample estimate`), found in each picture")
    p.add_argument("--shared", action="store_true", help="the inputs share one stamp: estimate it from all of them first")
    p.add_argument("--inpaint", action="store_true", help="repaint all of the --mask area from its surroundings before "
                   "the network refines it (an opaque stamp, e.g. a logo; without it the mask's pixels start from the "
                   "network's own removal and only those it sees opaque are repainted)")
    p.add_argument("--no-detect", action="store_true", help="no automatic stamp detection: enlarge and denoise only "
                   "(a --mask or --stamp is still removed)")
    p.add_argument("--denoise", type=float, default=None, help="JPEG noise reduction, 0 to 1: 1 = the model's full "
                   "strength, lower keeps that share of the picture's grain and noise outside the stamp; default: "
                   "1 for JPEG and WebP files, 0 for lossless ones (PNG, BMP, TIFF, GIF)")
    p.add_argument("--tta", action="store_true", help="also run on the mirrored picture and average: twice the time, "
                   "about +0.1 dB")
    p.add_argument("--tile", type=int, default=TILE, help="tile size in input pixels (memory is bounded by it)")
    p.add_argument("--save-mask", action="store_true",
                   help="also write NAME.mask.png beside each output: where the stamp was found and removed (white), at "
                        "the input's size; edit it and give it back with --mask")
    p.add_argument("--max-megapixels", type=float, default=None,
                   help=f"refuse inputs over this many megapixels, from their header (default {MAX_MEGAPIXELS}; at --scale 4 a "
                        "quarter of it); setting it also lets through files that declare far more pixels than their size suggests")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave out inputs whose output exists, and its mask with --save-mask (resume a stopped batch)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.set_defaults(func=cmd_clean)

    es = sub.add_parser("estimate", help="estimate the stamp several pictures share (RGBA file: colour + matte)",
                        formatter_class=fmt, parents=[engine])
    es.add_argument("inputs", nargs="+", help="2 or more pictures (files, folders, globs) carrying the same stamp")
    es.add_argument("-o", "--output", required=True, help="the stamp as an RGBA PNG")
    es.add_argument("--smooth", type=int, default=3, help="radius of the edge-aware smoothing of the matte (0 = none)")
    es.add_argument("--unconfirmed", action="store_true",
                    help="the set's estimate alone: without the network's own matte of each picture mixed in, "
                         "and without trimming the matte to where the network finds a stamp")
    es.set_defaults(func=cmd_estimate)

    t = sub.add_parser("train", help="train the model on synthetic stamps over picture folders", formatter_class=fmt)
    t.add_argument("--config", help="TOML or JSON file of training options (flags override it)")
    t.add_argument("--data", nargs="+", help="picture folders (default: those in $DESAMPLE_DATA, else procedural pictures only)")
    t.add_argument("--out", help="checkpoint/log folder (resumes from its last.pt)")
    t.add_argument("--init", help="weights to start from when there is no checkpoint yet")
    t.add_argument("--export", help="write the best EMA (or SWA) weights here (fp16 safetensors + JSON)")
    for name, typ in (("steps", int), ("batch", int), ("patch", int), ("patch-late", int), ("late-after", int),
                      ("lr", float), ("decay-from", int), ("decay-to", int), ("lr-min", float),
                      ("procedural", int), ("val-every", int), ("ckpt-every", int), ("threads", int), ("seed", int),
                      ("accum", int), ("workers", int), ("swa-from", int), ("swa-every", int), ("val-size", int)):
        t.add_argument(f"--{name}", type=typ, dest=name.replace("-", "_"))
    t.add_argument("--reindex", action="store_true", default=None, help="list the picture folders again (cached index)")
    t.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                   help="the trunk in bf16 (autocast, channels-last): auto = where the CPU has bf16 instructions (AMX, AVX512-BF16)")
    t.add_argument("--dihedral", action=argparse.BooleanOptionalAction, default=None,
                   help="pictures in all 8 flips and quarter turns, not only mirrored")
    t.add_argument("--allow-no-cjk-font", action="store_true", default=None,
                   help="train even without a Japanese font (Japanese stamps are then drawn as Latin words)")
    sw = t.add_argument_group("volunteer swarm (pip install -e '.[swarm]')")
    sw.add_argument("--swarm", action="store_true", default=None, help="train with peers over the internet (hivemind)")
    sw.add_argument("--initial-peers", nargs="+", help="multiaddrs of running peers (as printed by the first one)")
    sw.add_argument("--swarm-host", help="address to listen on (default 0.0.0.0)")
    sw.add_argument("--swarm-port", type=int, help="port to listen on (default: any free one)")
    sw.add_argument("--run-id", help="peers with the same run id train together (default desample)")
    sw.add_argument("--swarm-batch", type=int, help="samples over all peers per optimiser step (default 256)")
    t.set_defaults(func=cmd_train)
    av = sub.add_parser("average", help="average weights that share an ancestor (a model soup), scored on "
                        "training's validation set", formatter_class=fmt)
    av.add_argument("weights", nargs="+", help="weights (.safetensors) of one architecture")
    av.add_argument("-o", "--output", required=True, help="the mean's weights (fp16 safetensors + JSON; "
                    "the shipped model's path also rewrites its ONNX twin)")
    av.add_argument("--data", nargs="*", default=[], help="picture folders whose validation share scores it, as "
                    "`desample train --data` (none: procedural pictures)")
    av.add_argument("--val-fraction", type=float, default=0.1, help="as training's (default 0.1)")
    av.add_argument("--val-max", type=int, default=64, help="validation pictures at most, as training's (default 64)")
    av.set_defaults(func=cmd_average)
    b = sub.add_parser("bench", help="compare with bicubic, waifu2x, Real-CUGAN, Real-ESRGAN on stamped previews",
                       formatter_class=fmt, parents=[engine])
    b.add_argument("--images", help="picture folder (its validation split); default: procedural pictures")
    b.add_argument("--all", action="store_true", help="use every picture of --images, not only the validation split")
    b.add_argument("--crops", action="store_true", help="draw crops.png for --images too (it shows those pictures)")
    b.add_argument("-o", "--out", dest="output", default="bench_out", help="report folder")
    b.add_argument("--methods", nargs="+", help="method names (default: all available)")
    b.add_argument("--limit", type=int, help="at most this many pictures")
    b.add_argument("--kinds-per-picture", type=int, default=2, help="stamp kinds per picture (cycling over all kinds)")
    b.add_argument("--scale", type=int, default=2, choices=(2, 4), help="enlargement compared (4x: each peer's own 4x, "
                   "waifu2x's 2x twice; a folder's pictures are the 4x truth, so its previews are a quarter of their size)")
    b.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement (one subprocess per method)")
    b.add_argument("--speed", action="store_true", help="measure speed instead: latency, tiles, start-up, peak memory (GNU time)")
    b.add_argument("--repeats", type=int, default=5, help="runs per speed number (the median is reported)")
    b.add_argument("--real", metavar="DIR", help="real stamped pictures without truth: the stamp's residual contrast, "
                   "collateral change against --no-detect, recall and precision against --reference, blind and --shared")
    b.add_argument("--reference", help="with --real: the stamp's reference mask (PNG, white = stamp) or a JSON naming it "
                   "and the pictures that carry another stamp")
    b.add_argument("--real-widths", type=int, nargs="+", default=[233, 0], help="with --real: widths to score at (0 = own size)")
    b.add_argument("--real-methods", nargs="+", default=["blind", "shared"], choices=("blind", "shared"), help="with --real")
    b.add_argument("--shared", type=int, metavar="K", help="sets of K previews sharing one stamp (--limit sets, default 4): "
                   "blind vs. estimated vs. true stamp")
    b.add_argument("--shared-stamps", choices=("words", "preview"), default="words",
                   help="with --shared, the sets' stamps after the first (the classic SAMPLE): large words of every "
                   "opacity, with or without a glow, or 'preview': see-through glowing words, as on previews")
    b.set_defaults(func=cmd_bench)
    lg = sub.add_parser("log", help="show a training run's validation history (and draw curves.png)", formatter_class=fmt)
    lg.add_argument("run", help="the run folder given to `desample train --out`")
    lg.set_defaults(func=cmd_log)

    e = sub.add_parser("export", help="write the model as ONNX and check it against PyTorch", formatter_class=fmt)
    e.add_argument("-o", "--output", default=None, help="ONNX file; default: beside the shipped weights")
    e.add_argument("--model", default=None, help="weights (.safetensors); default: the shipped model")
    e.set_defaults(func=cmd_export)

    sv = sub.add_parser("serve", help="a web page to clean pictures in the browser (needs the `web` extra)",
                        formatter_class=fmt, parents=[engine])
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network interface)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="pictures cleaned at the same time")
    sv.add_argument("--queue", type=int, default=8, help="requests that may wait for a worker; past them the server answers 503")
    sv.add_argument("--max-upload-mb", type=float, default=30.0, help="largest request body")
    sv.add_argument("--max-megapixels", type=float, default=16.0, help="largest input picture")
    sv.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
