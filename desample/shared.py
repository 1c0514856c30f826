"""`--shared`: the stamp read off a set of pictures that share it, and whether to use it.

`estimate_shared` estimates the stamp (stamps.estimate: Dekel et al.'s multi-image matting for a few
pictures, the set's statistics for many) with the network's opinion of each picture, and measures
how well it explains them; `why_not_used`, `not_sharing` and `pictures_using` decide, from those
measures and the thresholds of `SharedPolicy`, whether the set's stamp is used and on which
pictures. The measurements behind each threshold are in docs/shared_stamp.md ("Thresholds").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core import SEEN_FROM, network_pass, stamp_seen_smaller
from .engine.runtime import as_engine
from .ops import UNBLEND_UP_TO, as_float, unblend


@dataclass(frozen=True)
class SharedPolicy:
    # With fewer than sure_from pictures, an estimate whose misfit (how badly it explains what the
    # network removes, 0 = exactly, 1 = unrelated) is over misfit_limit is not used: blind removal.
    misfit_limit: float = 0.75
    sure_from: int = 8
    # An estimate that leaves out more than this share of the stamps the network finds in the
    # pictures is not used: they do not share one stamp. Pictures where the network finds fewer
    # than uncovered_from pixels do not count.
    uncovered_limit: float = 0.6
    uncovered_from: int = 50
    # In a set the stamp explains clearly (misfit <= clear_misfit), a picture whose own misfit is
    # over odd_misfit does not carry the stamp: cleaned blind.
    odd_misfit: float = 0.7
    clear_misfit: float = 0.2
    # Refinement steps (stamps.estimate.refine_stamp) below and from sure_from pictures, and rounds
    # of refitting to what the network removes with the estimate inverted (refit_to_cleans).
    refine_step: float = 0.003
    refine_step_sure: float = 0.001
    refit_rounds: int = 2


POLICY = SharedPolicy()


def estimate_shared(pictures: list[np.ndarray], engine, tile: int = 512, smooth: int = 3, refine: bool = True):
    """The stamp shared by pictures (H_k, W_k, 3), as `desample clean --shared` uses it: estimated from
    the set (stamps.estimate) with the network's own mattes of each picture as a second opinion, and
    kept where the network, run blind on each picture, confirms a stamp; each picture's opinion
    counts as much as the picture under the stamp (the network's own removal) differs from its colour.

    refine: refine the estimate jointly with the pictures (stamps.estimate.refine_stamp), in smaller
    steps from POLICY.sure_from pictures on, whose estimate is closer to start with; then refit it
    POLICY.refit_rounds times to what the network removes from each picture with it inverted
    (stamps.estimate.refit_to_cleans).

    With few pictures a faint stamp's matte can spill over content (measured, a faint SAMPLE in 4
    real previews: the matte covered 3/4 of the picture and outside the stamp the result lost 5.6 dB
    to blind removal); the network's detections across the set mark where the stamp can be.

    From MANY_PICTURES pictures on, the stamp is read off the set's statistics instead
    (stamps.estimate.moment_matched, seen_by_the_set), and the network is told it after the inverse
    blend rather than looking again (est.look_after False): on optcg_set1 (26 real cards, 233 px wide)
    the edge-based estimate had the word at a third of its opacity and left it plain.
    """
    from .stamps.estimate import MANY_PICTURES, cannot_carry, estimate_stamp, moment_matched, seen_by_the_set

    engine = as_engine(engine)
    floats = [as_float(p) for p in pictures]
    found, mattes, cleans = [], [], []
    for p in floats:  # one blind pass each: where the stamp is, its matte, and the picture without it
        found.append(np.zeros(p.shape[:2], np.float32))
        cleans.append(np.empty_like(p))
        mattes.append(np.zeros(p.shape[:2], np.float32))
        network_pass(engine, p, None, tile, None, cleans[-1], found[-1], matte_out=mattes[-1])
        if max(p.shape[:2]) > SEEN_FROM:  # a stamp beyond the network's reach: seen made small, as `clean` does
            seen_stamp, seen = stamp_seen_smaller(p, engine, tile)
            if seen is not None:
                found[-1] = np.maximum(found[-1], seen)
                mattes[-1] = np.maximum(mattes[-1], seen_stamp[0])

    def shares_one(plain) -> bool:
        # A set that shares one stamp: its glow, whose soft edges the pictures hardly show, is
        # solved for where the network's mattes see it too (for pictures each under their own
        # word, that would make the union of their words the set's stamp).
        uncovered = _median(_uncovered(plain, found))
        return uncovered is None or uncovered <= POLICY.uncovered_limit

    est = estimate_stamp(floats, smooth=smooth, hints=mattes, cleans=cleans, reach_hints=shares_one)
    if len(floats) >= MANY_PICTURES:
        # Enough pictures to read the stamp off their statistics (scale and colour right, where the
        # edges leave them free), kept where the network finds it across the set.
        confirmed = seen_by_the_set(moment_matched(est, floats), found)
        # Which pictures carry it, judged on the stamp alone (the whole layer moment_matched saw
        # held the pictures' text box too, whose text no blend explains).
        confirmed.foreign = cannot_carry(confirmed, floats)
    else:
        confirmed = _confirmed_and_refined(est, engine, floats, found, mattes, cleans, tile, refine)
    confirmed.misfit_each = _misfits(confirmed, floats, cleans)
    confirmed.misfit = _median(confirmed.misfit_each)
    confirmed.uncovered_each = _uncovered(confirmed, found)
    confirmed.uncovered = _median(confirmed.uncovered_each)
    return confirmed


def _confirmed_and_refined(est, engine, floats, found, mattes, cleans, tile: int, refine: bool):
    """A few pictures' estimate kept where the network confirms it, completed where it sees more,
    then refined and refitted (see estimate_shared)."""
    from .stamps.estimate import confirmed_by, filled_where_seen, refine_stamp, refit_to_cleans

    confirmed = filled_where_seen(confirmed_by(est, found), found, mattes, floats, cleans)
    if refine:
        step = POLICY.refine_step if len(floats) < POLICY.sure_from else POLICY.refine_step_sure
        confirmed = refine_stamp(confirmed, floats, step=step)
        for _ in range(POLICY.refit_rounds):
            under = [_cleaned_under(confirmed, p, offset, engine, tile) for p, offset in zip(floats, confirmed.offsets, strict=True)]
            confirmed = refit_to_cleans(confirmed, floats, under, see_through=UNBLEND_UP_TO)  # only what unblend inverts
    return confirmed


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def _cleaned_under(est, picture: np.ndarray, offset: tuple[int, int], engine, tile: int) -> np.ndarray:
    """The picture under est's stamp as the network sees it: est inverted (its opaque part filled from
    around), then the network run blind at 1x, which takes away what est left of the stamp."""
    from .ops import harmonic_fill

    unblended, opaque = unblend(picture, *est.placed(picture.shape[:2], offset))
    clean = np.empty_like(unblended)
    network_pass(engine, harmonic_fill(unblended, opaque > 0), None, tile, None, clean, None)
    return clean


def _misfit(est, pictures: list[np.ndarray], cleans: list[np.ndarray], visible: float = 0.05) -> float | None:
    """How badly est explains the pictures: the median over the pictures of _misfits."""
    return _median(_misfits(est, pictures, cleans, visible))


def _misfits(est, pictures: list[np.ndarray], cleans: list[np.ndarray], visible: float = 0.05) -> list[float | None]:
    """How badly est explains each picture: 1 minus the cosine between what the network removed from
    it, J - C (C: its own removal), and what the stamp would remove from C, a*(W - C), where the
    matte is visible (None where it is nowhere). Not the size of the removal, only its shape:
    the network removes a stamp only in part, and a right stamp then still points the same way
    (0-0.2 measured; 0.3-0.7 for a stamp the network sees in part), where a matte over the pictures'
    content, or the wrong colour, does not (about 1: unrelated)."""
    misfits = []
    for picture, clean, offset in zip(pictures, cleans, est.offsets, strict=True):
        matte, color = est.placed(picture.shape[:2], offset)
        seen = matte > visible
        if not seen.any():
            misfits.append(None)
            continue
        removed = (picture[seen] - clean[seen]).ravel().astype(np.float64)
        predicted = (matte[seen][:, None] * (color[seen] - clean[seen])).ravel().astype(np.float64)
        norm = np.sqrt((removed @ removed) * (predicted @ predicted))
        misfits.append(1.0 - float(removed @ predicted) / norm if norm > 1e-12 else 1.0)
    return misfits


def _uncovered(est, found: list[np.ndarray], near: int = 3) -> list[float | None]:
    """For each picture, the share of what the network finds of a stamp there (found: its blind
    detections) that est leaves out (more than `near` px from its matte); None where it finds
    under POLICY.uncovered_from pixels."""
    from .ops import dilate

    shares = []
    for seen, offset in zip(found, est.offsets, strict=True):
        marked = seen > 0.5
        if marked.sum() < POLICY.uncovered_from:
            shares.append(None)
            continue
        matte, _ = est.placed(seen.shape, offset)
        shares.append(float((marked & ~dilate(matte > 0, near)).sum() / marked.sum()))
    return shares


def not_sharing(est) -> list[int]:
    """The pictures (indices into est.offsets) that do not seem to carry the set's stamp, to be
    cleaned blind while the rest use it: in a set the stamp explains clearly, those it does not
    explain (POLICY.odd_misfit): another series' picture, or a clean one. (Each picture's own uncovered
    share is no guide: in real sets that share a stamp the network also marks content, and blind
    removal there cost 0.57 dB on one set of 8.)"""
    foreign = list(getattr(est, "foreign", []))  # darker or lighter under the stamp than a blend can make them
    if est.misfit is None or est.misfit > POLICY.clear_misfit:
        return foreign
    return sorted(set(foreign) | {i for i, m in enumerate(est.misfit_each) if m is not None and m > POLICY.odd_misfit})


def why_not_used(est) -> str | None:
    """Why `--shared` should not use est, in words (see POLICY.uncovered_limit and POLICY.misfit_limit), or None:
    use it. A stamp nobody measured (a stamp file) is trusted."""
    if est.uncovered is not None and est.uncovered > POLICY.uncovered_limit:
        return (f"leaves out {100 * est.uncovered:.0f}% of the stamps the network finds in them (over "
                f"{100 * POLICY.uncovered_limit:.0f}%: they do not seem to share one stamp)")
    if est.misfit is not None and len(est.offsets) < POLICY.sure_from and est.misfit > POLICY.misfit_limit:
        return f"does not explain them (misfit {est.misfit:.2f} > {POLICY.misfit_limit})"
    return None


def stamp_explains(est) -> bool:
    """Whether `--shared` should use est (see why_not_used)."""
    return why_not_used(est) is None


def pictures_using(est) -> list[bool]:
    """For each picture est was estimated from (est.offsets' order), whether `--shared` removes est
    from it; False: that picture is cleaned blind (the set's estimate not used, or not_sharing)."""
    if not stamp_explains(est):
        return [False] * len(est.offsets)
    odd = set(not_sharing(est))
    return [i not in odd for i in range(len(est.offsets))]
