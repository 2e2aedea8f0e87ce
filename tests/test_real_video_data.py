"""Molmo2 video sets through the real hub client: VideoPoint (configs, generated videos in the
repo, clip-relative times), track-instruction (one config per dataset) and Molmo2-Cap (train
only); prepared examples are decoded and their times checked against the frames they show."""

import os

import numpy as np

import hub_fixtures
from data_pipelines import download, media, registry, writer
from data_pipelines.schema import deserialize


def _frames_at(ref, times, root):
    """The frames the library's decoder (`load_video`, the clip rule of `ExampleEncoder`) shows at clip-relative
    `times`: the video sampled at its 2 fps, then the last sampled frame at or before each time."""
    from molmo2_jax.processing.video import load_video

    clip = None
    if ref.start_s is not None or ref.end_s is not None:
        clip = (ref.start_s or 0.0, ref.end_s if ref.end_s is not None else float("inf"))
    video = load_video(ref.data or media.resolve(ref.path, root), max_frames=10_000, max_fps=2.0, clip=clip)
    idx = np.searchsorted(video.timestamps, np.asarray(times) + 1e-6) - 1
    return video.frames[np.clip(idx, 0, None)]


def _get(hub, tmp_path, names, manual):
    raw, prep = str(tmp_path / "raw"), str(tmp_path / "prep")
    summary = download.download_datasets([registry.get(n) for n in names], raw, workers=2)
    assert not summary.failed, summary.failed
    assert set(summary.manual) == set(names)  # videos are a manual step, and the summary says so
    for rel, data in manual.items():  # the user's manual step
        os.makedirs(os.path.dirname(os.path.join(raw, rel)), exist_ok=True)
        with open(os.path.join(raw, rel), "wb") as f:
            f.write(data)
    out = {}
    for n in names:
        index = writer.prepare(n, raw, prep)
        src = writer.open_source(prep, n)
        out[n] = (index, {ex.id: ex for ex in (deserialize(src[i]) for i in range(len(src)))})
    return raw, out


def test_video_points_are_clip_relative_and_land_on_their_frames(hub, tmp_path):
    truth, manual = hub_fixtures.molmo2_video_point(hub)
    names = ["vixmo_points_minmax_0_5"]
    raw, out = _get(hub, tmp_path, names, manual)
    index, examples = out[names[0]]
    assert set(examples) == truth.ids and index["skipped"] == truth.skipped
    assert not any(f.endswith(".json") for f in index["files"])  # the URL mapping is no data
    for ex_id, ex in examples.items():
        want = [t[0][0] for t in truth.points[ex_id]]  # absolute annotated times
        start = ex.video.start_s or 0.0
        assert [round(p.time + start, 3) for p in ex.points] == want
        frames = _frames_at(ex.video, [p.time for p in ex.points], raw)
        assert [hub_fixtures.frame_at(f) for f in frames] == [round(t * 2) for t in want]
    long = examples["yt_long_car"]
    assert (long.video.start_s, long.video.end_s) == (30.0, 40.0)
    assert long.video.path.endswith("youtube-cc/youtube-cc-temporal-2fps/yt_long_2fps.mp4")
    assert '"3.5 1 100 200"' in long.conversations[0].messages[1].content
    assert examples["sora2/gen1_ball"].video.path == os.path.join(
        "hf", "allenai", "Molmo2-VideoPoint", "generated_videos", "sora2-2fps", "gen1_2fps.mp4")


def test_track_instruction_reads_only_its_config_and_times_match_frames(hub, tmp_path):
    truths, manual = hub_fixtures.molmo2_track_instruction(hub)
    raw, out = _get(hub, tmp_path, list(truths), manual)
    for name, t in truths.items():
        _, examples = out[name]
        assert set(examples) == t.ids, name  # no row of a sibling config
        (ex,) = examples.values()
        assert [tr.object_id for tr in ex.tracks] == [1]  # ids outside mask_id dropped
        assert np.allclose(ex.tracks[0].points, t.points[ex.id][0])
        times = [p[0] for p in ex.tracks[0].points]
        frames = _frames_at(ex.video, times, raw)
        assert [hub_fixtures.frame_at(f) for f in frames] == [round(s * 2) for s in times]
    ground = next(iter(out["molmo2_video_ground"][1].values()))
    assert ground.conversations[0].messages[1].content == \
        '<tracks coords="0.5 1 100 100;4.5 1 900 900">the red car</tracks>'


def test_molmo2_cap_reads_train_not_val(hub, tmp_path):
    truth, manual = hub_fixtures.molmo2_cap(hub)
    raw, out = _get(hub, tmp_path, ["vixmo3_top_level_captions_min_3"], manual)
    index, examples = out["vixmo3_top_level_captions_min_3"]
    assert set(examples) == truth.ids and index["skipped"] == truth.skipped
    assert [f.split("/")[-1] for f in index["files"]] == ["train-00000-of-00001.parquet"]
