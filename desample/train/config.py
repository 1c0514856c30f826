"""Training configuration: a dataclass, read from a TOML/JSON file and overridden by flags.

The resolved config is written next to every checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


def _default_data() -> list[str]:
    """Folders named in $DESAMPLE_DATA (separated like PATH); none: procedural pictures only. The
    package never guesses a folder outside itself: an installed wheel has no "beside the repo"."""
    return [p for p in os.environ.get("DESAMPLE_DATA", "").split(os.pathsep) if p]


# Options tried and removed (their measurements: docs/model_history.md), with the value that meant "off".
RETIRED = {"pixel_loss": "l1", "edge_loss": 0.0, "unblended": 0.0}


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=_default_data)  # picture folders (recursive, Danbooru layout ok)
    procedural: int = 48  # procedural anime-like pictures added to the training pictures
    val_fraction: float = 0.1  # held out of the folders by file-name hash
    out: str = os.path.expanduser("~/.cache/desample/run")  # checkpoints and logs (outside the repo)
    init: str = ""  # weights (.safetensors) to start from when no checkpoint exists in `out`
    export: str = ""  # where to write the best EMA (or SWA) weights as fp16 safetensors (e.g. desample/weights/default.safetensors)
    steps: int = 200_000
    batch: int = 12
    patch: int = 96  # LR crop size
    patch_late: int = 128  # larger crops late in training: more context for big words
    late_after: int = 20_000
    lr: float = 3e-4
    warmup: int = 200
    # Cosine decay of the learning rate from `lr` at step decay_from to lr_min at decay_to (lr_min
    # after); by absolute step, so a resumed run carries on where it was. decay_to <= decay_from: none.
    decay_from: int = 0
    decay_to: int = 0
    lr_min: float = 1e-5
    clip: float = 1.0  # gradient-norm clipping (logged as grad_norm)
    ema: float = 0.999
    # Stochastic weight averaging: a uniform mean of the raw weights, one every swa_every steps from
    # step swa_from on (0: off), validated beside the EMA; the better of the two is kept. The EMA's
    # ~1,000-step memory can average too little: a mean over a longer stretch has scored higher
    # (docs/model_history.md), and validating both tells which, run by run.
    swa_from: int = 0
    swa_every: int = 50
    stamp_weight: float = 4.0  # extra L1 weight inside the stamp
    lr_loss: float = 0.5  # weight of the LR-output L1
    mask_loss: float = 0.3  # weight of the mask BCE + dice (3x the first 0.1: fewer false marks on clean pictures)
    matte_loss: float = 0.5  # weight of the matte L1 (+ half as much colour L1 where the stamp is)
    guide_prob: float = 0.3  # how often the true matte/mask is given as guide
    # Weight of an L1 between the blind 2x output and the "no stamp here" one (guide given, all
    # zero) away from the stamp, gradient through both (train.loop.mode_gap). Otherwise the two
    # differ by ~1.3 grey levels of fine detail everywhere (real cards, 233 px): change that a user
    # of blind removal gets on art nothing marked, against `--no-detect` (docs/real_previews.md).
    mode_consistency: float = 0.0
    # Pictures in all 8 flips/quarter turns, not only mirrored: more variety for the enlargement,
    # which sees the same few hundred pictures for hundreds of thousands of crops.
    dihedral: bool = False
    # Share of pictures with their RGB channels permuted (hair, eyes and clothes in new colours):
    # more colour variety for the same pictures; the stamp is drawn afterwards in its own colours.
    channel_shuffle: float = 0.0
    # Share of crops placed on the stamp, and of previews with no stamp (data.pairs.CropSampler): the
    # detector's prior. Every preview stamped and most crops on the stamp taught it to mark clean
    # pictures (3% of them); these shares brought that down (docs/model_history.md).
    stamp_crops: float = 0.5
    unstamped: float = 0.3
    # Share of pictures with bokeh circles and soft glows painted in as content (data.pairs.add_light_spots):
    # what the shipped model mistakes for a stamp's glow on clean pictures.
    light_spots: float = 0.0
    # Share of stamped pictures under a see-through glowing word (data.pairs.CropSampler preview_stamps):
    # mattes trained without them saw a quarter of such a word's opacity or less (docs/shared_stamp.md).
    preview_stamps: float = 0.0
    # Real previews (data.pairs.CropSampler): the pictures' own text and graphics drawn into the truth,
    # stamps as real previews carry them, previews at real sizes (up to 750 px), and noise that is no picture.
    own_graphics: float = 0.0
    real_stamps: float = 0.0
    large_previews: float = 0.0
    noise_pictures: float = 0.0
    # Training draws Japanese stamps: without a CJK font it refuses to start unless this is set.
    allow_no_cjk_font: bool = False
    pool: int = 48  # previews kept in memory for cropping
    refresh: int = 3  # previews replaced per step
    val_every: int = 750
    ckpt_every: int = 250
    threads: int = 2  # per process (under torchrun: per rank)
    # The trunk in bf16 (autocast) + channels-last: "auto" does it where the CPU computes bf16 natively
    # (AMX or AVX512-BF16; see train.precision), "bf16" always, "fp32" never. Validation is fp32.
    precision: str = "auto"
    accum: int = 1  # micro-batches per optimiser step (gradient accumulation; DDP syncs once per step)
    workers: int = 0  # DataLoader processes decoding pictures of a big (streamed) collection
    in_memory: int = 500  # a shard of at most this many pictures is decoded once and kept in memory (~3-9 MB each)
    val_max: int = 64  # validation pictures at most (the first of the held-out split; procedural: 6 at most)
    val_size: int = 330  # long side of the validation previews, LR pixels (a typical preview's 330)
    index_cache: str = "~/.cache/desample/index"  # where picture indexes of --data folders are cached
    reindex: bool = False  # walk the folders again even when a cached index exists
    # Volunteer swarm (hivemind; desample/train/swarm.py): peers that come and go over the internet.
    swarm: bool = False
    initial_peers: list[str] = field(default_factory=list)  # multiaddrs of running peers (none: start a swarm)
    swarm_host: str = "0.0.0.0"  # address this peer listens on
    swarm_port: int = 0  # 0: any free port
    run_id: str = "desample"  # peers with the same run id train together
    swarm_batch: int = 256  # samples over all peers per optimiser step
    matchmaking_time: float = 3.0  # seconds to gather peers for averaging (raise over the internet)
    averaging_timeout: float = 30.0
    seed: int = 0
    # NetConfig fields for a new model (e.g. {"widths": [16, 16, 24, 32]}); with init, blocks to add to
    # it (e.g. {"sr_blocks": 2}: model.weights.grow)
    net: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        path = Path(path)
        if path.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(path.read_text())
        else:
            raw = json.loads(path.read_text())
        return cls().updated(raw)

    def updated(self, changes: dict) -> TrainConfig:
        names = {f.name for f in fields(self)}
        changes = dict(changes)
        for name, off in RETIRED.items():  # old run configs name them, switched off: nothing to do
            if name in changes and changes.pop(name) != off:
                raise ValueError(f"training option {name} was removed: it did not help (docs/model_history.md)")
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return TrainConfig(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)
