"""Molmo2Processor: parity with transformers 5.23 (fixtures), tiny configs, HF directories, training."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os

import numpy as np
import pytest

from molmo2_jax.processing.chat import SFT_WEIGHTING, branch_positions
from molmo2_jax.processing.images import ImageConfig
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.model_config import MOLMO2_TOKENS, Molmo2TokenIds
from molmo2_jax.processing.tokenizer import HFTokenizer, QwenTokenizer
from molmo2_jax.processing.video import VideoFrames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "processing")


@pytest.fixture(scope="module")
def synth():
    """The fixture generator's deterministic `synthetic_image` (the script imports no torch)."""
    spec = importlib.util.spec_from_file_location(
        "make_processor_fixtures", os.path.join(ROOT, "scripts", "make_processor_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_image


@pytest.fixture(scope="module")
def processor() -> Molmo2Processor:
    return Molmo2Processor(QwenTokenizer())


@pytest.fixture(scope="module")
def hf_reference():
    with open(os.path.join(FIXTURES, "hf_parity_cases.json")) as f:
        cases = json.load(f)
    return cases, dict(np.load(os.path.join(FIXTURES, "hf_parity.npz")))


def _levels(pixels: np.ndarray) -> np.ndarray:
    """Pixels in [-1, 1] back to their uint8 levels (exact for (k - 127.5) / 127.5)."""
    return np.rint(pixels * 127.5 + 127.5).astype(np.uint8)


@pytest.mark.parametrize("case", ["square", "tall", "wide", "tiny", "large", "two_images", "video"])
def test_matches_transformers_processor(processor, hf_reference, synth, case):
    cases, ref = hf_reference
    spec = cases[case]
    if "images" in spec:
        out = processor(text=spec["text"], images=[synth(*s) for s in spec["images"]])
        pixels, pooling = out["pixel_values"], "image_token_pooling"
        assert np.array_equal(out["image_grids"], ref[f"{case}/image_grids"])
        assert np.array_equal(out["image_num_crops"], ref[f"{case}/image_num_crops"])
    else:
        frames = np.stack([synth(*s) for s in spec["frames"]])
        out = processor(text=spec["text"], videos=[VideoFrames(frames, spec["timestamps"])])
        pixels, pooling = out["pixel_values_videos"], "video_token_pooling"
        assert np.array_equal(out["video_grids"], ref[f"{case}/video_grids"])
    assert np.array_equal(out["input_ids"][0], ref[f"{case}/input_ids"])
    assert np.array_equal(out["mm_token_type_ids"][0], ref[f"{case}/mm_token_type_ids"])
    assert np.array_equal(out[pooling], ref[f"{case}/{pooling}"])

    levels = _levels(pixels)
    assert np.array_equal((levels.astype(np.float32) - 127.5) / 127.5, pixels)
    assert list(levels.shape) == ref[f"{case}/pixel_shape"].tolist()
    sample = levels.reshape(-1)[::int(ref[f"{case}/pixel_step"])]
    max_diff = np.abs(sample.astype(np.float64) - ref[f"{case}/pixel_sample"]).max() / 127.5
    assert max_diff <= 1e-5
    shas = [hashlib.sha256(c.tobytes()).hexdigest().encode() for c in levels]
    assert shas == ref[f"{case}/pixel_sha"].tolist()


def test_video_file_goes_through_sampling_and_decoding(processor):
    path = os.path.join(FIXTURES, "clip_h264_bframes.mp4")
    out = processor.chat("What happens?", videos=[path])
    assert out["video_grids"].tolist() == [[21, 9, 9]]
    assert out["pixel_values_videos"].shape == (21, 729, 588)
    ids = Molmo2TokenIds()
    assert (out["input_ids"] == ids.frame_start).sum() == 21
    assert (out["input_ids"] == ids.image_patch).sum() == 21 * 81 == len(out["video_token_pooling"])
    text = processor.tokenizer.decode(out["input_ids"][0])
    assert text.startswith("<|im_end|>0.0 <frame_start>") and " 10.0 <frame_start>" in text


def test_chat_builds_the_template_prompt(processor):
    img = np.zeros((40, 60, 3), np.uint8)
    text = "<|image|><|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"
    a, b = processor.chat("What is it?", images=[img]), processor(text=text, images=[img])
    assert all(np.array_equal(a[k], b[k]) for k in b)
    assert a["input_ids"][0, 0] == processor.token_ids.bos
    bos_given = processor(text="<|im_end|>" + text, images=[img])
    assert np.array_equal(bos_given["input_ids"], a["input_ids"])


def test_placeholder_count_must_match_media(processor):
    with pytest.raises(ValueError, match="placeholders"):
        processor(text="Describe.", images=[np.zeros((8, 8, 3), np.uint8)])
    text_only = processor(text="Hello, world!")
    assert text_only["input_ids"].tolist() == [[151645, 9707, 11, 1879, 0]]
    assert "pixel_values" not in text_only


def test_tiny_model_ids_and_crops(tmp_path):
    """A tiny vocabulary with image tokens at 300..309 and 28 px crops."""
    from molmo2_jax.processing.tokenizer import SentencePieceTokenizer, train_sentencepiece

    words = "point to the red dog cat what is in this image count boats there are none".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, 8)) for _ in range(300)]
    sp = SentencePieceTokenizer(train_sentencepiece(lines, str(tmp_path / "sp"), vocab_size=300))
    ids = Molmo2TokenIds.from_tokenizer(sp)
    assert (ids.image_start, ids.video_prompt) == (300, 309)
    cfg = ImageConfig(base_size=28, patch_size=14, pooling=(2, 2), max_crops=4,
                      overlap_margins=(0, 0))
    proc = Molmo2Processor(sp, image=cfg)
    out = proc.chat("what is in this image", images=[rng.integers(0, 256, (50, 30, 3), np.uint8)])
    crops = out["pixel_values"].shape[0]
    assert out["pixel_values"].shape[1:] == (4, 588)
    assert (out["input_ids"] == 302).sum() == len(out["image_token_pooling"]) == crops
    assert out["input_ids"].max() <= 309 and out["mm_token_type_ids"].sum() > crops


def test_save_then_load_gives_the_same_processor(tmp_path):
    """`Molmo2Processor.save` / `.load`: settings, token ids and the tokenizer file survive; outputs match."""
    from molmo2_jax.processing.tokenizer import SentencePieceTokenizer, train_sentencepiece

    words = "point to the red dog cat what is in this image".split()
    rng = np.random.default_rng(1)
    model_file = train_sentencepiece([" ".join(rng.choice(words, 8)) for _ in range(300)], str(tmp_path / "sp"),
                                     vocab_size=300)
    proc = Molmo2Processor(SentencePieceTokenizer(model_file),
                           ImageConfig(base_size=28, patch_size=14, max_crops=3, overlap_margins=(0, 0)))
    proc.save(str(tmp_path / "saved"), model_file)
    back = Molmo2Processor.load(str(tmp_path / "saved"))
    assert (back.image, back.video, back.token_ids) == (proc.image, proc.video, proc.token_ids)
    image = rng.integers(0, 256, (40, 50, 3), np.uint8)
    a, b = proc.chat("what is in this image", images=[image]), back.chat("what is in this image", images=[image])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(FileNotFoundError, match="processor.json"):
        Molmo2Processor.load(str(tmp_path))


def _tiny_hf_dir(tmp_path, processor_config: dict | None) -> str:
    """An HF-style directory with a small word-level tokenizer.json and Molmo2's configs."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tmp_path.mkdir()
    vocab = {w: i for i, w in enumerate(["[UNK]", "describe", "this", "image", "user", "assistant",
                                         "\n", "."])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>", *MOLMO2_TOKENS])
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|im_end|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 378, "width": 378}, "patch_size": 14, "pooling_size": [2, 2],
         "max_crops": 4, "overlap_margins": [4, 4], "image_mean": [0.5] * 3,
         "image_std": [0.5] * 3}))
    if processor_config is not None:
        (tmp_path / "processor_config.json").write_text(json.dumps(processor_config))
    return str(tmp_path)


def test_from_pretrained_reads_hf_configs(tmp_path):
    hub = Molmo2Processor.from_pretrained(_tiny_hf_dir(
        tmp_path / "hub", {"image_use_col_tokens": True, "use_single_crop_col_tokens": False,
                           "video_use_col_tokens": False}))
    assert isinstance(hub.tokenizer, HFTokenizer)
    assert hub.image.max_crops == 4 and not hub.image.low_res_col_tokens
    assert hub.video.pooling == (3, 3) and hub.video.frame_special_tokens
    ids = hub.token_ids
    assert ids.bos == ids.eos == hub.tokenizer.token_id("<|im_end|>")
    out = hub.chat("describe this image .", images=[np.zeros((600, 900, 3), np.uint8)])
    assert out["pixel_values"].shape == (5, 729, 588)
    # transformers' class default without a processor config: column tokens on the low-res rows too
    default = Molmo2Processor.from_pretrained(_tiny_hf_dir(tmp_path / "bare", None))
    assert default.image.low_res_col_tokens


def test_training_example_expands_media_and_keeps_targets(processor):
    img = np.random.default_rng(0).integers(0, 256, (300, 500, 3), np.uint8)
    branches = [[{"role": "user", "content": "What colour?"}, {"role": "assistant", "content": "Red."}],
                [{"role": "user", "content": "Count."}, {"role": "assistant", "content": "Two."}]]
    ex = processor.training_example(branches, images=[img], weighting=SFT_WEIGHTING)
    prompt = processor.chat("What colour?", images=[img])
    n_prompt = prompt["input_ids"].shape[1]
    assert np.array_equal(ex["input_ids"][:n_prompt], prompt["input_ids"][0])
    assert np.array_equal(ex["target_ids"][:n_prompt - 1], ex["input_ids"][1:n_prompt])
    vision = ex["mm_token_type_ids"] == 1
    assert (ex["loss_weights"][vision] == 0).all() and (ex["branch_ids"][vision] == -1).all()
    assert np.array_equal(ex["pixel_values"], prompt["pixel_values"])
    assert np.array_equal(ex["position_ids"], branch_positions(ex["branch_ids"]))
    shared = int((ex["branch_ids"] == -1).sum())
    for b in (0, 1):
        pos = ex["position_ids"][ex["branch_ids"] == b]
        assert pos.tolist() == list(range(shared, shared + len(pos)))
    assert processor.tokenizer.decode(ex["target_ids"][ex["loss_weights"] > 0]) == \
        "Red.<|im_end|>Two.<|im_end|>"


def test_example_encoder_fits_the_data_pipeline_contract(processor):
    from data_pipelines.packing import MediaField, PackSpec
    from data_pipelines.schema import Conversation, Example, ImageRef, Message, VideoRef

    from molmo2_jax.processing.encode import ExampleEncoder

    img = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    qa = [Conversation([Message("user", q), Message("assistant", a)], style="pointing")
          for q, a in [("Point to the dog.", '<points coords="1 1 500 500">dog</points>'),
                       ("Point to the cat.", "There are none.")]]
    encode = ExampleEncoder(processor)
    spec = PackSpec(seq_len=4096, media=(MediaField.image(16), MediaField.video(32)))

    out = encode(Example("a", "pixmo_points", "pointing", qa, images=[ImageRef(array=img)]))
    spec.check(out)
    assert set(out["loss_weights"].tolist()) == {0.0, np.float32(0.2)}
    assert out["input_ids"].tolist().count(processor.token_ids.image_start) == 1

    with open(os.path.join(FIXTURES, "clip_h264_bframes.mp4"), "rb") as f:
        video = VideoRef(data=f.read(), start_s=1.0, end_s=4.0)
    cap = [Conversation([Message("user", "Describe the video."), Message("assistant", "Shapes.")])]
    out = encode(Example("b", "videos", "video_qa", cap, video=video))
    spec.check(out)
    assert out["video_grids"].tolist() == [[7, 9, 9]]  # 3 s at 2 fps, last frame kept
    answer = out["loss_weights"] > 0
    n = answer.sum()
    assert np.allclose(out["loss_weights"][answer], 2 / np.sqrt(n))


def test_encoder_writes_subtitles_after_the_video_for_the_sampled_frames(processor):
    """allenai's video preprocessor appends "subtitle\\n{s} - {e} text" lines near sampled frames to the video."""
    from data_pipelines.schema import Conversation, Example, Message, VideoRef

    from molmo2_jax.processing.encode import ExampleEncoder

    with open(os.path.join(FIXTURES, "clip_h264_bframes.mp4"), "rb") as f:
        video = VideoRef(data=f.read(), start_s=1.0, end_s=4.0)  # frames at 0.0 .. 3.0 s of the clip
    qa = [Conversation([Message("user", q), Message("assistant", a)], "video_multiple_choice")
          for q, a in [("Who speaks?", "A. Ann"), ("What is said?", "B. Hi")]]
    subs = [[0.5, 1.0, "Hi there."], [9.0, 9.5, "Much later."]]
    out = ExampleEncoder(processor)(Example("s", "vixmo_syn_video_capqa_with_sub_v2", "video_qa", qa,
                                            video=video, meta={"subtitles": subs}))
    text = processor.tokenizer.decode(out["input_ids"])
    assert "<frame_end>subtitle\n0.5 - 1.0 Hi there.\n<|im_start|>user\nWho speaks?" in text
    assert "Much later" not in text and text.count("subtitle\n") == 1  # shared prefix of the message tree
    assert (out["branch_ids"][out["input_ids"] == processor.tokenizer.encode("subtitle")[0]] == -1).all()
