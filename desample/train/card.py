"""The model card's numbers: the validation table of the shipped weights, and a run's progress.

    python -m desample.train.card desample/weights/default.json                 # print the table
    python -m desample.train.card desample/weights/default.json --update MODEL_CARD.md    # rewrite its table
    python -m desample.train.card desample/weights/default.json --update docs/model_history.md --run ~/.cache/desample/run3
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def card_table(meta: dict) -> str:
    v = meta["val"]
    rows = [
        ("PSNR RGB (dB)", "psnr"),
        ("PSNR Y, 4 px shaved (dB)", "psnr_y"),
        ("SSIM (Y)", "ssim"),
        ("PSNR inside the stamp (dB)", "psnr_in"),
        ("PSNR outside the stamp (dB)", "psnr_out"),
    ]
    lines = ["| metric | desample | bicubic of the stamped input | gain |", "|---|---|---|---|"]
    for label, k in rows:
        digits = 4 if k == "ssim" else 2
        lines.append(f"| {label} | {v[k]:.{digits}f} | {v['bicubic_' + k]:.{digits}f} | {v[k] - v['bicubic_' + k]:+.{digits}f} |")
    if "delta_e" in v:  # recorded since stamp synthesis 2
        lines.append(f"| colour difference, mean CIEDE2000 (lower is better) | {v['delta_e']:.3f} | {v['bicubic_delta_e']:.3f} "
                     f"| {v['delta_e'] - v['bicubic_delta_e']:+.3f} |")
    lines.append(f"| mask IoU (threshold 0.5) | {v['mask_iou']:.3f} | - | - |")
    hours = meta.get("train_seconds", 0) / 3600
    what = f"Step {meta['step']} of this run"
    if meta.get("averaged_from"):  # `desample average`: the training record is its newest input's
        parts = ", ".join(f"step {a['step']} (PSNR {a['val_psnr']:.2f})" for a in meta["averaged_from"])
        what = f"The mean of the weights of {parts} (`desample average`); the newest is step {meta['step']}"
    lines += ["", f"{what}, {meta['samples']:,} training crops in all, {hours:.2f} h of training time; "
              f"{meta.get('val_previews', '?')} validation previews from {meta.get('val_pictures', '?')} held-out pictures."]
    return "\n".join(lines)


def progress_table(run: str | Path, crops_before: int = 0) -> str:
    """Gains over bicubic at every validation of a run (from its log.jsonl)."""
    from .log import read_log

    _, val = read_log(run)
    lines = ["| step | crops in all | whole picture | inside the stamp | outside | mask IoU |", "|---|---|---|---|---|---|"]
    for r in val:
        v = r["val"]
        lines.append(f"| {r['step']} | {r['samples'] + crops_before:,} | {v['psnr'] - v['bicubic_psnr']:+.2f} | "
                     f"{v['psnr_in'] - v['bicubic_psnr_in']:+.2f} | {v['psnr_out'] - v['bicubic_psnr_out']:+.2f} | {v['mask_iou']:.3f} |")
    return "\n".join(lines)


def merge_progress(old_block: str, new_table: str) -> str:
    """Rows of earlier runs (steps the new log doesn't have) are kept: a resumed run starts a new log."""
    def rows(block):
        cells = [(line, line.split("|")[1].strip()) for line in block.splitlines() if line.startswith("| ")]
        return {int(step): line for line, step in cells if step.isdigit()}

    merged = {**rows(old_block), **rows(new_table)}
    return "\n".join(new_table.splitlines()[:2] + [merged[k] for k in sorted(merged)])


def block(text: str, name: str) -> str:
    start = text.index("\n", text.index(f"<!-- {name}:begin")) + 1
    return text[start:text.index(f"<!-- {name}:end -->")]


def replace_block(text: str, name: str, content: str) -> str:
    """Replace what lies between `<!-- name:begin ... -->` and `<!-- name:end -->`."""
    start = text.index(f"<!-- {name}:begin")
    start = text.index("\n", start) + 1
    end = text.index(f"<!-- {name}:end -->")
    return text[:start] + content.strip() + "\n" + text[end:]


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights_json", nargs="?", default="desample/weights/default.json")
    p.add_argument("--update", help="a markdown file whose card:begin/card:end block is rewritten")
    p.add_argument("--run", help="a run folder: also rewrite the progress:begin/progress:end block from its log")
    args = p.parse_args(argv)
    table = card_table(json.loads(Path(args.weights_json).read_text()))
    if not args.update:
        print(table)
        return
    path = Path(args.update)
    text = replace_block(path.read_text(), "card", table)
    if args.run:
        table = merge_progress(block(text, "progress"), progress_table(Path(args.run).expanduser()))
        text = replace_block(text, "progress", table)
    path.write_text(text)
    print(f"updated {path}")


if __name__ == "__main__":
    sys.exit(main())
