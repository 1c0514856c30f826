import json

import numpy as np
from PIL import Image

from desample.data.pairs import CropSampler, add_light_spots, hr_region, make_preview
from desample.data.procedural import anime_picture
from desample.data.sources import list_pictures, split_holdout
from desample.data.stream import load_pictures


def test_procedural_pictures_are_deterministic_and_anime_like():
    a, b = anime_picture(160, 120, seed=3), anime_picture(160, 120, seed=3)
    assert a.size == (160, 120) and a.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    arr = np.asarray(a, np.float32)
    assert arr.std() > 20, "not a flat picture"
    assert not np.array_equal(np.asarray(anime_picture(160, 120, seed=4)), np.asarray(a))


def test_folder_is_listed_recursively(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    anime_picture(32, 32).save(tmp_path / "a" / "b" / "x.png")
    anime_picture(32, 32).save(tmp_path / "y.jpg")
    (tmp_path / "notes.txt").write_text("not a picture")
    assert sorted(p.name for p in list_pictures(tmp_path)) == ["x.png", "y.jpg"]


def test_danbooru_layout_skips_watermarked_posts(tmp_path):
    (tmp_path / "original" / "0001").mkdir(parents=True)
    (tmp_path / "metadata").mkdir()
    for pid in (1001, 2001, 3001):
        anime_picture(32, 32).save(tmp_path / "original" / "0001" / f"{pid}.jpg")
    posts = [
        {"id": "1001", "tags": [{"id": "1", "name": "1girl"}]},
        {"id": "2001", "tags": [{"id": "2", "name": "sample_watermark"}]},
        {"id": "3001", "tag_string": "solo text"},
    ]
    (tmp_path / "metadata" / "2017en.json").write_text("\n".join(json.dumps(p) for p in posts) + "\n{broken\n")
    assert [p.stem for p in list_pictures(tmp_path)] == ["1001"]
    assert len(list_pictures(tmp_path, skip_tags=())) == 3


def test_holdout_split_is_stable(tmp_path):
    from pathlib import Path

    files = [Path(f"{i}.png") for i in range(200)]
    train, val = split_holdout(files, 0.1)
    assert 5 < len(val) < 40 and len(train) + len(val) == 200
    train2, val2 = split_holdout(files[::-1], 0.1)
    assert set(val) == set(val2)


def test_corrupt_files_are_skipped(tmp_path):
    anime_picture(32, 32).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    pics = load_pictures(list_pictures(tmp_path))
    assert len(pics) == 1


def test_preview_pairs_are_consistent(rng):
    pic = anime_picture(300, 260, seed=1)
    hr = hr_region(pic, 100, 2, rng)
    assert hr.size[0] % 2 == 0 and hr.size[1] % 2 == 0 and max(hr.size) <= 300
    pv = make_preview(hr, rng, 2, kind="word")
    h, w = pv.mask.shape
    assert pv.hr.shape == (2 * h, 2 * w, 3) and pv.stamped.shape == (h, w, 3)
    # The clean LR is the truth shrunk: close to its 2x2 box average.
    box = pv.hr.reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    assert np.abs(box - pv.clean_lr).mean() < 0.03
    # The stamp is where the stamped picture differs from the clean one.
    diff = np.abs(pv.stamped - pv.clean_lr).mean(axis=2)
    assert diff[pv.mask].mean() > 2 * diff[~pv.mask].mean()


def test_crop_sampler_batches(rng):
    pics = [anime_picture(200, 180, seed=i) for i in range(3)] + [Image.new("RGB", (90, 70), (200, 100, 50))]
    sampler = CropSampler(pics, rng, pool_size=6)
    b = sampler.batch(5, 48)
    assert b["x"].shape == (5, 3, 48, 48) and b["hr"].shape == (5, 3, 96, 96)
    assert b["guide"].shape == (5, 2, 48, 48) and b["mask"].shape == (5, 1, 48, 48)
    assert set(np.unique(b["guide"][:, 1])) <= {0.0, 1.0}
    assert b["x"].dtype == np.float32 and 0 <= b["x"].min() and b["x"].max() <= 1


def test_crop_sampler_dihedral_turns_pictures():
    # A wide picture whose left half is dark: mirrored it stays wide; turned a quarter it stands up.
    arr = np.full((100, 240, 3), 230, np.uint8)
    arr[:, :120] = 20
    pic = Image.fromarray(arr)

    def shapes(dihedral):
        sampler = CropSampler([pic], np.random.default_rng(3), pool_size=24, dihedral=dihedral)
        return {pv.hr.shape[0] > pv.hr.shape[1] for pv in sampler.pool}

    assert shapes(False) == {False}  # only mirrored: every preview wide
    assert shapes(True) == {False, True}  # some turned a quarter


def test_crop_sampler_channel_shuffle_permutes_colours():
    # A picture of one colour: shuffled, each preview is a permutation of it, never the original.
    pic = Image.new("RGB", (200, 160), (200, 100, 40))

    def colours(share):
        sampler = CropSampler([pic], np.random.default_rng(4), pool_size=24, channel_shuffle=share, unstamped=1.0)
        return {tuple(np.round(pv.hr.reshape(-1, 3).mean(0) * 255).astype(int)) for pv in sampler.pool}

    assert colours(0.0) == {(200, 100, 40)}
    shuffled = colours(1.0)
    assert (200, 100, 40) not in shuffled and len(shuffled) > 2
    assert all(sorted(c) == [40, 100, 200] for c in shuffled)


def test_light_spots_are_painted_into_the_truth_not_stamped():
    # On black, the spots only add light, in round blobs; in the sampler they are part of the
    # picture (the truth keeps them) and never marked as stamp.
    black = Image.new("RGB", (300, 240))
    lit = np.asarray(add_light_spots(black, np.random.default_rng(0)), np.float32)
    assert lit.shape == (240, 300, 3) and lit.max() > 60 and 0.02 < (lit.max(2) > 10).mean() < 0.9
    grey = Image.new("RGB", (200, 160), (90, 90, 90))

    def sampler(share):
        return CropSampler([grey], np.random.default_rng(5), pool_size=12, unstamped=1.0, light_spots=share)

    assert all(np.ptp(pv.hr) == 0 for pv in sampler(0.0).pool)
    spotted = sampler(1.0)
    assert all(np.ptp(pv.hr) > 0.05 and pv.hr.mean() > 90 / 255 for pv in spotted.pool)
    batch = spotted.batch(8, 32)
    assert batch["mask"].max() == 0 and batch["alpha"].max() == 0
    assert np.abs(batch["x"] - batch["lr"]).max() < 0.1  # the input is the spotted picture, only JPEG'd


def test_preview_stamps_put_see_through_glowing_words_in_training():
    pics = [anime_picture(300, 240, seed=s) for s in range(2)]
    previews = CropSampler(pics, np.random.default_rng(3), pool_size=10, unstamped=0.0, preview_stamps=1.0).pool
    assert {pv.kind for pv in previews} <= {"word", "word_jp"}
    assert all(0 < pv.alpha.max() <= 0.85 for pv in previews)  # see-through, never opaque
    mixed = CropSampler(pics, np.random.default_rng(3), pool_size=10, unstamped=0.0).pool
    assert {pv.kind for pv in mixed} - {"word", "word_jp"} or any(pv.alpha.max() > 0.85 for pv in mixed)


def test_crop_sampler_unstamped_previews_and_crops_on_the_stamp():
    pics = [anime_picture(400, 300, seed=s) for s in range(3)]
    plain = CropSampler(pics, np.random.default_rng(1), pool_size=8, unstamped=1.0)
    assert {pv.kind for pv in plain.pool} == {"none"}
    b = plain.batch(4, 48)
    assert b["mask"].max() == 0 and b["alpha"].max() == 0

    def share_on_stamp(stamp_crops):
        sampler = CropSampler(pics, np.random.default_rng(2), pool_size=8, stamp_crops=stamp_crops, unstamped=0.0)
        return float((sampler.batch(200, 32)["mask"].max(axis=(1, 2, 3)) > 0).mean())

    assert share_on_stamp(1.0) == 1.0  # every crop holds stamped pixels
    assert share_on_stamp(0.0) < share_on_stamp(1.0)


