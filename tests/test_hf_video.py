"""A video prompt through a processor read from an HF Molmo2 directory = transformers 5.23's Molmo2Processor.

Fixtures: scripts/make_hf_video_fixtures.py (transformers loads the same directories and decodes the same
clips). Training keeps molmo-utils' sampler; the HF directory's processor uses transformers'.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from molmo2_jax.processing import qwen_tokenizer_json
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.processing.video import hf_frame_indices, load_video, load_video_hf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf_video")
CLIPS = os.path.join(ROOT, "tests", "fixtures", "processing")


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(FIXTURES, "cases.json")) as f:
        doc = json.load(f)
    return doc, dict(np.load(os.path.join(FIXTURES, "hf_video.npz")))


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_text(qwen_tokenizer_json())
    return str(path)


def hf_dir(case: str, tokenizer_json: str, tmp_path) -> str:
    """The committed HF directory of `case` plus the Qwen3 tokenizer.json it leaves out."""
    d = tmp_path / case
    shutil.copytree(os.path.join(FIXTURES, case), d)
    shutil.copy(tokenizer_json, d / "tokenizer.json")
    return str(d)


@pytest.mark.parametrize("case", ["hub_defaults", "eleven_frames_plain", "slow_video"])
def test_video_prompt_from_hf_directory_matches_transformers(reference, tokenizer_json, tmp_path, case):
    doc, ref = reference
    spec = doc["cases"][case]
    processor = Molmo2Processor.load(hf_dir(case, tokenizer_json, tmp_path))
    frames = processor.load_video(os.path.join(CLIPS, spec["clip"]))
    assert np.allclose(frames.timestamps, spec["timestamps"], rtol=0, atol=1e-12)
    out = processor(text=spec["text"], videos=[os.path.join(CLIPS, spec["clip"])])
    assert np.array_equal(out["input_ids"][0], ref[f"{case}/input_ids"])
    assert np.array_equal(out["mm_token_type_ids"][0], ref[f"{case}/mm_token_type_ids"])
    assert np.array_equal(out["video_grids"], ref[f"{case}/video_grids"])
    assert np.array_equal(out["video_token_pooling"], ref[f"{case}/video_token_pooling"])
    levels = np.rint(out["pixel_values_videos"] * 127.5 + 127.5).astype(np.uint8)
    assert np.array_equal((levels.astype(np.float32) - 127.5) / 127.5, out["pixel_values_videos"])
    assert list(levels.shape) == ref[f"{case}/pixel_shape"].tolist()
    sample = levels.reshape(-1)[::int(ref[f"{case}/pixel_step"])].astype(np.float64)
    assert np.abs(sample - ref[f"{case}/pixel_sample"]).max() / 127.5 <= 1e-5
    assert [hashlib.sha256(f.tobytes()).hexdigest().encode() for f in levels] == ref[f"{case}/pixel_sha"].tolist()


def test_training_sampler_stays_molmo_utils(reference):
    """The same 10 s clip: transformers' 20 frames (no last frame) vs molmo-utils' 21 (0.0 .. 10.0)."""
    doc, _ = reference
    path = os.path.join(CLIPS, doc["cases"]["hub_defaults"]["clip"])
    assert load_video(path, 384, 2.0).timestamps.tolist() == [k / 2 for k in range(21)]
    assert load_video_hf(path, 384, 2.0).timestamps.tolist() == doc["cases"]["hub_defaults"]["timestamps"]


def test_frame_indices_reproduce_torch_arange(reference):
    """torch.arange(0, total, total / target).int() in float32, including its overshoots (dropped)."""
    doc, _ = reference
    for row in doc["arange_grid"]:
        ours = hf_frame_indices(row["total"], 30.0, 1e9, row["target"], None).tolist()
        torch_idx = [i for i in row["indices"] if i < row["total"]]
        assert ours == torch_idx, row


def test_hf_directory_settings_survive_save_and_load(tokenizer_json, tmp_path):
    processor = Molmo2Processor.load(hf_dir("eleven_frames_plain", tokenizer_json, tmp_path))
    assert (processor.video.sampler, processor.video.max_frames, processor.video.frame_special_tokens) == (
        "transformers", 11, False)
    processor.save(str(tmp_path / "ours"), os.path.join(str(tmp_path), "eleven_frames_plain", "tokenizer.json"))
    assert Molmo2Processor.load(str(tmp_path / "ours")).video == processor.video


def test_unsupported_hf_video_setting_is_refused(tokenizer_json, tmp_path):
    d = hf_dir("hub_defaults", tokenizer_json, tmp_path)
    path = os.path.join(d, "video_preprocessor_config.json")
    with open(path) as f:
        cfg = json.load(f)
    with open(path, "w") as f:
        json.dump({**cfg, "fps": 1}, f)
    with pytest.raises(ValueError, match="video_preprocessor_config.json.*fps"):
        Molmo2Processor.load(d)
