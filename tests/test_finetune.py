"""Fine-tuning on your own JSONL: line checks, LoRA with qwix (adapters only), merge, export to transformers."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from data_pipelines.readers.user_jsonl import read_jsonl
from molmo2_jax import lora

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def _scene(path, rng, side=56):
    """A square image with one coloured disc; returns (colour, centre in pixels)."""
    colour = str(rng.choice(list(COLOURS)))
    cx, cy = rng.integers(12, side - 12, 2)
    yy, xx = np.mgrid[:side, :side]
    img = np.full((side, side, 3), 240, np.uint8)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 64] = COLOURS[colour]
    Image.fromarray(img).save(path)
    return colour, (int(cx), int(cy))


def write_jsonl(d, n=12, bad=False, seed=0):
    """n good lines (images with points in pixels) and, with `bad`, one line of each bad kind; returns the path."""
    rng = np.random.default_rng(seed)
    os.makedirs(d / "imgs", exist_ok=True)
    lines = []
    for i in range(n):
        colour, (x, y) = _scene(d / "imgs" / f"{i}.png", rng)
        lines.append({"image": f"imgs/{i}.png", "points": [{"label": f"{colour} circles", "xy": [[x, y]]}]})
    if bad:
        (d / "imgs" / "corrupt.png").write_bytes(b"\x89PNG not really")
        lines += [{"image": "imgs/missing.png", "points": [{"label": "red circles", "xy": [[5, 5]]}]},
                  {"image": "imgs/corrupt.png", "qa": [{"question": "What is this?", "answer": "A disc."}]},
                  {"image": "imgs/0.png", "points": [{"label": "red circles", "xy": [[70, 5]]}]},
                  {"image": "imgs/0.png", "conversation": []},
                  {"image": "imgs/0.png", "qa": [{"question": "Colour?", "answer": "Red."}], "caption": "x"}]
    path = d / "data.jsonl"
    with open(path, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
        if bad:
            f.write("{not json\n")
    return str(path)


BAD_REASONS = ("missing_media", "undecodable_media", "outside the image", "empty conversation",
               "unknown key(s) ['caption']", "not valid JSON")


def bad_lines(n_good):
    """Line number -> reason of the bad lines `write_jsonl(bad=True)` appends after `n_good` good ones."""
    return {n_good + 1 + i: why for i, why in enumerate(BAD_REASONS)}


def test_validate_reports_each_bad_line_with_its_number(tmp_path, capsys):
    from data_pipelines.validate import main

    path = write_jsonl(tmp_path, bad=True)
    assert main([path]) == 1
    out = capsys.readouterr().out
    assert f"{path}: 12 good line(s), 6 bad line(s)" in out
    for n, why in bad_lines(12).items():
        line = next(x for x in out.splitlines() if x.startswith(f"{path}:{n}:"))
        assert why in line, line
    good, bad = read_jsonl(path)
    assert [n for n, _ in bad] == sorted(bad_lines(12))
    ex = good[0]  # pixels -> fractions, the pointing answer in Molmo2's format
    assert 0 < ex.points[0].xy[0][0] < 1 and "<points coords=" in ex.conversations[0].messages[1].content


def test_video_times_and_units_are_checked(tmp_path):
    from data_pipelines.readers.user_jsonl import check_line
    from data_pipelines.media import encode_video
    from data_pipelines.schema import BadSample

    (tmp_path / "v.mp4").write_bytes(encode_video(np.zeros((4, 32, 32, 3), np.uint8), fps=2.0))  # 2 s
    ok = check_line({"video": "v.mp4", "coords": "1000",
                     "points": [{"label": "dot", "xy": [[500, 500]], "time": 1.0}]}, str(tmp_path))
    assert ok.points[0].xy == [(0.5, 0.5)] and ok.video is not None
    with pytest.raises(BadSample, match="outside the video"):
        check_line({"video": "v.mp4", "points": [{"label": "dot", "xy": [[5, 5]], "time": 9.0}]}, str(tmp_path))


def test_trainer_stops_with_the_report_unless_skip_bad(tmp_path, tiny_inference_dir):
    path = write_jsonl(tmp_path, n=2, bad=True)
    cmd = [sys.executable, "-m", "molmo2_jax.main", "--config", os.path.join(ROOT, "configs/finetune.py"),
           "--workdir", str(tmp_path / "run"), f"--config.init.checkpoint={tiny_inference_dir / 'model'}",
           f"--config.data.path={path}", "--config.total_steps=1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr and "skip_bad=True" in res.stderr
    for n in bad_lines(2):
        assert f"{path}:{n}:" in res.stderr


def _ft_config(tiny_dir, path, steps):
    import configs.finetune

    c = configs.finetune.get_config()
    c.init.checkpoint = str(tiny_dir / "model")
    c.data.path = path
    c.model.name = "tiny"
    c.dtype = "float32"
    c.total_steps, c.warmup_steps, c.log_every, c.checkpoint_every = steps, 2, 2, 1000
    c.batch_size, c.seq_len = 4, 256
    c.data.max_crops, c.data.max_crops_per_image, c.data.window = 12, 2, 16
    c.learning_rate.llm = 1e-2
    c.lora.rank, c.lora.alpha = 4, 8.0
    return c


@pytest.mark.slow
def test_lora_trains_adapters_only(tmp_path, tiny_inference_dir):
    from molmo2_jax import train
    from molmo2_jax.checkpoints.orbax_io import load_params
    from molmo2_jax.data import make_processor, make_train_data
    from molmo2_jax.main import _MODEL_KEYS, build_optimizer

    config = _ft_config(tiny_inference_dir, write_jsonl(tmp_path, n=6), 3)
    base = load_params(config.init.checkpoint)
    data = make_train_data(config, make_processor(config, str(tmp_path)), base.cfg)
    ids = jnp.asarray(np.random.default_rng(0).integers(1, 200, (2, 10)), jnp.int32)
    base_logits = np.asarray(base(ids))
    model = lora.lora_from_config(config, base, data)  # shares the base arrays (donated by the step)
    assert len(lora.adapted_modules(model)) == 7 * base.cfg.text.num_layers  # q k v o gate up down
    before = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.LoRAParam))))
    adapters = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(model, nnx.LoRAParam)))
    optimizer, _ = build_optimizer(config, model)
    opt_leaves = [x for x in jax.tree.leaves(nnx.state(optimizer, nnx.OptState)) if np.size(x) > 1]
    assert sum(np.size(x) for x in opt_leaves) == 2 * sum(np.size(x) for x in jax.tree.leaves(adapters))
    step = train.make_train_step()
    it = iter(data)
    for _ in range(3):
        batch = {k: jnp.asarray(v) for k, v in next(it).items() if k in _MODEL_KEYS}
        out = step(model, optimizer, batch)
    assert bool(out["finite"])
    after = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.LoRAParam))))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), before, after)  # base bit-identical
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), adapters,
                         nnx.to_pure_dict(nnx.state(model, nnx.LoRAParam)))
    assert max(jax.tree.leaves(moved)) > 0
    # merge: the merged plain model computes what base + adapters compute
    merged = lora.merge_lora(model)
    assert type(merged).__name__ == "Molmo2" and not nnx.state(merged, nnx.LoRAParam)
    np.testing.assert_allclose(np.asarray(merged(ids)), np.asarray(model(ids)), atol=1e-5)
    assert float(np.abs(np.asarray(merged(ids)) - base_logits).max()) > 1e-4


@pytest.mark.slow
def test_lora_finetune_on_jsonl_then_export_matches_transformers(tmp_path, tiny_inference_dir, capsys):
    """The whole path: skip_bad run, loss falls, small adapter files, merged model -> HF, logits <= 1e-4."""
    from transformers import Molmo2ForConditionalGeneration

    from hf_reference import Inputs, torch_logits
    from molmo2_jax.checkpoints.orbax_io import load_params
    from molmo2_jax.convert import export_hf
    from molmo2_jax.main import run

    config = _ft_config(tiny_inference_dir, write_jsonl(tmp_path, n=16, bad=True), 24)
    config.data.skip_bad = True
    work = tmp_path / "run"
    run(config, str(work))
    assert "16 good line(s), 6 bad line(s)" in capsys.readouterr().out
    losses = [json.loads(x)["loss"] for x in open(work / "metrics.jsonl")]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(work / "adapters") for f in fs)
    full = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(work / "model") for f in fs)
    assert size < full / 5, (size, full)
    saved = json.load(open(work / "model" / "processor.json"))  # generate reads the base's tokenizer
    assert saved["tokenizer"] and os.path.exists(work / "model" / saved["tokenizer"])
    ours = load_params(str(work / "model"))
    base = load_params(config.init.checkpoint)
    assert float(np.abs(np.asarray(ours.language_model.layers[0].self_attn.q_proj.kernel[...])
                        - np.asarray(base.language_model.layers[0].self_attn.q_proj.kernel[...])).max()) > 0
    export_hf(ours, str(tmp_path / "hf"), extra_files_from=str(work / "model"))
    theirs = Molmo2ForConditionalGeneration.from_pretrained(str(tmp_path / "hf")).eval()
    ids = np.random.default_rng(1).integers(1, ours.cfg.text.vocab_size - 1, (2, 12)).astype(np.int64)
    logits = np.asarray(ours(jnp.asarray(ids)))
    assert np.max(np.abs(torch_logits(theirs, Inputs(dict(input_ids=ids))) - logits)) <= 1e-4
