"""Video: molmo-utils' frame sampling, PyAV decoding with seeking, 3x3 pooling, frame token layout."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from molmo2_jax.processing.errors import MediaError
from molmo2_jax.model_config import Molmo2TokenIds
from molmo2_jax.processing.video import (VideoConfig, VideoFrames, load_video, process_video,
                                         sample_frame_times, video_token_segments)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "processing")


@pytest.fixture(scope="module")
def molmo_utils() -> dict:
    with open(os.path.join(FIXTURES, "molmo_utils_sampling.json")) as f:
        return json.load(f)


def test_ten_second_clip_gives_21_frames_including_the_last():
    times = sample_frame_times(10.0, 384)
    assert times.tolist() == [k / 2 for k in range(21)]


def test_long_clip_is_spread_evenly_over_max_frames():
    times = sample_frame_times(200.0, 384)
    assert len(times) == 384 and times[0] == 0 and times[-1] == 200.0
    assert np.allclose(np.diff(times), 200 / 383)


def test_sampling_equals_molmo_utils_sample_times(molmo_utils):
    assert len(molmo_utils["grid"]) > 200
    for case in molmo_utils["grid"]:
        ours = sample_frame_times(case["duration"], case["max_frames"], case["max_fps"])
        assert ours.tolist() == case["times"], case


def test_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="duration"):
        sample_frame_times(-1.0, 8)
    with pytest.raises(ValueError, match="max_frames"):
        sample_frame_times(1.0, 0)


def test_decoded_frames_equal_molmo_utils_pyav(molmo_utils):
    """Same times and the same frames as molmo-utils' decode-everything PyAV loader (B-frames too)."""
    assert any(c["clip"] for c in molmo_utils["clips"])
    for clip in molmo_utils["clips"]:
        video = load_video(os.path.join(FIXTURES, clip["file"]), max_frames=clip["max_frames"],
                           clip=clip["clip"])
        assert video.timestamps.tolist() == clip["times"], clip["file"]
        shas = [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() for f in video.frames]
        assert shas == clip["frame_sha"], clip["file"]


def test_video_bytes_decode_like_the_file():
    path = os.path.join(FIXTURES, "clip_h264_bframes.mp4")
    with open(path, "rb") as f:
        from_bytes = load_video(f.read(), max_frames=8)
    from_file = load_video(path, max_frames=8)
    assert np.array_equal(from_bytes.frames, from_file.frames)
    assert np.array_equal(from_bytes.timestamps, from_file.timestamps)
    with pytest.raises(MediaError, match="clip"):
        load_video(path, clip=(20.0, 30.0))


def test_400_frame_clip_is_capped_at_384_frames(molmo_utils):
    clip = next(c for c in molmo_utils["clips"]
                if c["file"] == "clip_400f_2fps.mp4" and c["max_frames"] == 384 and not c["clip"])
    assert clip["duration"] == 200.0 and len(clip["times"]) == 384


@pytest.mark.parametrize("kind", ["empty", "garbage", "truncated", "missing"])
def test_bad_video_files_raise_media_error(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated":
        with open(os.path.join(FIXTURES, "clip_h264_bframes.mp4"), "rb") as f:
            path.write_bytes(f.read()[:3000])
    with pytest.raises(MediaError) as err:
        load_video(str(path))
    assert err.value.path == str(path)


def test_process_video_pools_3x3_per_frame():
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    out = process_video(VideoFrames(frames, [0.0, 0.5, 1.0]))
    assert out.pixel_values.shape == (3, 729, 588)
    assert out.grid == (3, 9, 9)
    assert out.pooling.shape == (3 * 81, 9)
    assert out.pooling[0].tolist() == [0, 1, 2, 27, 28, 29, 54, 55, 56]
    assert out.pooling[81].tolist() == [729 + i for i in [0, 1, 2, 27, 28, 29, 54, 55, 56]]
    assert (out.pooling >= 0).all()


def test_frame_token_layout():
    ids = Molmo2TokenIds()
    segments = video_token_segments([0.0, 0.5, 12.25], (3, 9, 9), VideoConfig(), ids)
    assert segments[0::2] == ["0.0 ", " 0.5 ", " 12.2 "]
    frame = segments[1].tolist()
    assert frame == [ids.frame_start] + [ids.image_patch] * 81 + [ids.frame_end]
    plain = video_token_segments([0.0], (1, 2, 2), VideoConfig(frame_special_tokens=False,
                                                                use_col_tokens=True), ids)
    assert plain[1].tolist() == [ids.image_start] + [ids.image_patch] * 2 + [ids.image_col] + \
        [ids.image_patch] * 2 + [ids.image_col] + [ids.image_end]


def test_one_frame_start_and_end_around_all_frames_when_not_per_frame():
    """allenai sft.py's layout: <frame_start> 0.0 patches 0.5 patches <frame_end>."""
    ids = Molmo2TokenIds()
    cfg = VideoConfig(per_frame_special_tokens=False)
    segments = video_token_segments([0.0, 0.5], (2, 1, 2), cfg, ids)
    assert [s if isinstance(s, str) else s.tolist() for s in segments] == [
        [ids.frame_start], "0.0 ", [ids.image_patch] * 2, " 0.5 ", [ids.image_patch] * 2, [ids.frame_end]]


def test_subtitles_near_a_sampled_frame_follow_the_video():
    """Molmo2's video preprocessor (subtitle_mode frame_1): items within 1 s of a frame, "s - e text" lines."""
    from molmo2_jax.processing.video import subtitle_text

    subs = [[0.2, 0.9, "Hi."], [2.6, 2.9, "Near 4.0? no."], [3.2, 3.6, "Close to 4."], [7.0, 8.0, "Later."]]
    assert subtitle_text(subs, [0.0, 4.0]) == "subtitle\n0.2 - 0.9 Hi.\n3.2 - 3.6 Close to 4.\n"
    assert subtitle_text(subs, [10.0]) == ""
    assert subtitle_text("plain text", [0.0]) == "subtitle\nplain text"


def test_video_frames_validate_their_shape():
    with pytest.raises(ValueError, match="uint8"):
        VideoFrames(np.zeros((2, 4, 4, 3), np.float32), [0.0, 1.0])
    with pytest.raises(ValueError, match="timestamp"):
        VideoFrames(np.zeros((2, 4, 4, 3), np.uint8), [0.0])
