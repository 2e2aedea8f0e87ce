"""Generation: greedy tokens equal transformers' generate; KV-cache logits equal a full forward."""

import jax.numpy as jnp
import numpy as np
import pytest
from hf_reference import image_inputs, text_inputs, video_inputs

from molmo2_jax.generation import bucket, generate_tokens, left_pad, sample_token

NEW = 24


def _hf_generate(model, inputs):
    import torch

    ids = torch.from_numpy(inputs.arrays["input_ids"])
    with torch.no_grad():  # explicit mask: generate would otherwise treat pad-id tokens in the prompt as padding
        out = model.generate(**inputs.torch(), attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                             min_new_tokens=NEW, do_sample=False, pad_token_id=0)
    return out[:, inputs.arrays["input_ids"].shape[1]:].numpy()


@pytest.mark.parametrize("make", [
    lambda rng: text_inputs(rng, batch=1, length=9),
    lambda rng: image_inputs(rng, n_images=1, hi_grid=(1, 2)),
    lambda rng: video_inputs(rng, n_frames=3),
], ids=["text", "image", "video"])
def test_greedy_generation_equals_transformers(hf_molmo2, our_molmo2, make):
    inputs = make(np.random.default_rng(11))
    want = _hf_generate(hf_molmo2[1], inputs)
    got = generate_tokens(our_molmo2, inputs.arrays, NEW)
    np.testing.assert_array_equal(got, want)


def test_cached_decode_logits_equal_full_forward(our_molmo2):
    inputs = image_inputs(np.random.default_rng(12))
    tokens, logits = generate_tokens(our_molmo2, inputs.arrays, 8, return_logits=True)
    full_ids = np.concatenate([inputs.arrays["input_ids"], tokens[:, :-1]], 1)
    arrays = dict(inputs.arrays, input_ids=full_ids,
                  mm_token_type_ids=np.pad(inputs.arrays["mm_token_type_ids"], ((0, 0), (0, 7))))
    full = np.asarray(our_molmo2(**{k: jnp.asarray(v) for k, v in arrays.items()}))
    t = inputs.arrays["input_ids"].shape[1]
    assert np.max(np.abs(full[:, t - 1:] - logits)) <= 1e-4


def test_left_padded_batch_matches_single_prompts(our_molmo2):
    rng = np.random.default_rng(13)
    rows = [rng.integers(1, 290, n) for n in (5, 9)]
    singles = [generate_tokens(our_molmo2, {"input_ids": r[None]}, 6) for r in rows]
    ids, mask = left_pad(rows, 9, pad_id=0)
    batched = generate_tokens(our_molmo2, {"input_ids": ids, "attention_mask": mask}, 6)
    np.testing.assert_array_equal(batched, np.concatenate(singles))


def test_stop_tokens_end_rows_and_pad_the_rest(our_molmo2):
    ids = np.random.default_rng(14).integers(1, 290, (1, 6))
    free = generate_tokens(our_molmo2, {"input_ids": ids}, 6)
    stop = int(free[0, 2])
    stopped = generate_tokens(our_molmo2, {"input_ids": ids}, 6, stop_ids=[stop], pad_id=-1)
    first = int(np.argmax(free[0] == stop))
    np.testing.assert_array_equal(stopped[0, : first + 1], free[0, : first + 1])
    assert (stopped[0, first + 1:] == -1).all()


def test_sampling_respects_top_p_and_greedy():
    import jax

    logits = jnp.log(jnp.asarray([[0.6, 0.3, 0.1]]))
    assert int(sample_token(logits, jax.random.key(0), 0.0, 1.0)[0]) == 0
    draws = {int(sample_token(logits, jax.random.key(i), 1.0, 0.5)[0]) for i in range(30)}
    assert draws == {0}  # only the top token lies inside the 0.5 nucleus
    draws = {int(sample_token(logits, jax.random.key(i), 1.0, 1.0)[0]) for i in range(60)}
    assert draws == {0, 1, 2}


def test_prompt_lengths_fall_into_few_buckets():
    assert {bucket(n) for n in range(1, 65)} == {64}
    assert bucket(65) == 128 and bucket(40000) == 65536


def test_generate_cli_prints_json_and_draws_png(tiny_inference_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "a.png")
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.generate", "--checkpoint",
                          str(tiny_inference_dir / "model"), "--image", str(tmp_path / "a.png"), "--prompt",
                          "Point to the red circles.", "--max-new-tokens", "8", "--json", "--out",
                          str(tmp_path / "out.png")], cwd=root, env=dict(os.environ, PYTHONPATH=root),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RuntimeWarning" not in run.stderr, run.stderr[-3000:]  # runpy: module already in sys.modules
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(out) >= {"text", "token_ids", "points"} and 1 <= len(out["token_ids"]) <= 8
    assert Image.open(tmp_path / "out.png").size == (64, 48)


def test_generate_cli_reports_a_bad_image(tiny_inference_dir, tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.generate", "--checkpoint",
                          str(tiny_inference_dir / "model"), "--image", str(tmp_path / "bad.jpg"), "--prompt", "Hi"],
                         cwd=root, env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True, timeout=600)
    assert run.returncode == 1 and "bad.jpg" in run.stderr


def test_generate_cli_with_a_video_writes_a_frame_strip(tiny_inference_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    from data_pipelines.media import encode_video

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = np.zeros((6, 32, 32, 3), np.uint8)
    frames[:, 8:16, 8:16] = 255
    (tmp_path / "clip.mp4").write_bytes(encode_video(frames, 2.0))
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.generate", "--checkpoint",
                          str(tiny_inference_dir / "model"), "--video", str(tmp_path / "clip.mp4"), "--prompt",
                          "Track the square.", "--max-new-tokens", "4", "--json", "--out", str(tmp_path / "strip.png")],
                         cwd=root, env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "token_ids" in json.loads(run.stdout.strip().splitlines()[-1])
    assert Image.open(tmp_path / "strip.png").size[0] > 32


def test_python_api_load_and_generate(tiny_inference_dir):
    """The interfaces' Python surface: molmo2_jax.load, molmo2_jax.generate, the parsers."""
    import molmo2_jax

    model, processor = molmo2_jax.load(str(tiny_inference_dir / "model"))
    image = np.zeros((40, 60, 3), np.uint8)
    batch = processor.chat("Point to the red circles.", images=[image])
    assert np.asarray(model(**{k: v for k, v in batch.items()})).shape[:2] == batch["input_ids"].shape
    answer = molmo2_jax.generate(model, processor, "Point to the red circles.", images=[image], max_new_tokens=5)
    assert isinstance(answer["text"], str) and len(answer["token_ids"]) <= 5
    assert molmo2_jax.parse_points('<points coords="1 1 500 500">x</points>', 60, 40)[0]["x"] == 30
    assert molmo2_jax.sample_frame_times(10.0, 128)[-1] == 10.0


def test_package_generate_is_the_function_after_the_library_is_imported():
    """`molmo2_jax.generate` stays callable: no library module imports the CLI module `molmo2_jax/generate.py`."""
    import subprocess
    import sys

    code = ("import sys, molmo2_jax, molmo2_jax.evaluate, molmo2_jax.main, molmo2_jax.convert, molmo2_jax.generation\n"
            "assert molmo2_jax.generate is molmo2_jax.generation.generate, molmo2_jax.generate\n"
            "assert 'molmo2_jax.generate' not in sys.modules\n"
            "import molmo2_jax.processing.formats\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def test_importing_the_output_formats_does_not_import_jax():
    """The data readers write targets with `processing.formats`; the package imports lazily, so no JAX."""
    import subprocess
    import sys

    code = "import sys, molmo2_jax.processing.formats\nassert 'jax' not in sys.modules, 'jax imported'\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def test_model_rejects_unknown_keyword_arguments(tiny_inference_dir):
    import molmo2_jax

    model, processor = molmo2_jax.load(str(tiny_inference_dir / "model"))
    batch = processor.chat("Hi", images=[np.zeros((40, 60, 3), np.uint8)])
    assert "image_grids" in batch  # transformers' layout inputs are accepted
    with pytest.raises(TypeError, match="pixel_value"):
        model(**dict(batch, pixel_value=batch["pixel_values"]))
