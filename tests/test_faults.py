"""Fault injection: preemption, bad checkpoints, full disk, hostile records and media, bad CLI input.

Trainer faults run the CLI on the tiny demo model for 8 steps; each ends in a clean message and, where a
good checkpoint exists, a resumed run whose losses equal the uninterrupted run's bit for bit (the
uninterrupted reference is trained once per module). See docs/reliability.md for the table.
"""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ("total_steps=8", "log_every=1", "checkpoint_every=2", "keep_checkpoints=3", "batch_size=4",
          "data.eval_examples=0", "data.window=16")


def _cmd(workdir, overrides=COMMON):
    return [sys.executable, "-m", "molmo2_jax.main", "--config", "configs/demo.py", "--workdir", str(workdir),
            *[f"--config.{o}" for o in overrides]]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")


def _faulted_env():
    """For a process the test kills or starves of disk: it reads the session's compilation cache, never writes."""
    from conftest import read_only_cache_env

    return read_only_cache_env(_env())


def _main(workdir, overrides=COMMON, timeout=600):
    return subprocess.run(_cmd(workdir, overrides), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    steps = [r["step"] for r in rows if "loss" in r]
    assert len(steps) == len(set(steps)), f"duplicate metrics rows: {steps}"
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _error_line(run):
    """The `error: ...` line the program ended with (libraries may log above it; it is the last word)."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), run.stderr[-3000:]
    return lines[-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its workdir and {step: loss}."""
    workdir = tmp_path_factory.mktemp("reference")
    run = _main(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir, _losses(workdir)


def _copy_run(reference, dest):
    """A copy of the reference workdir, as if the run had stopped after its last checkpoint."""
    shutil.copytree(reference, dest)
    shutil.rmtree(dest / "model")
    return dest


def _wait_for_step(proc, workdir, step, checkpoint=None, timeout=600):
    """Until the run logs `step` and, if given, `checkpoint` is complete (an async save can outlast a step)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if step in _losses(workdir) and (checkpoint is None or
                                             os.path.isdir(os.path.join(workdir, "checkpoints", str(checkpoint)))):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the run never logged step {step} with checkpoint {checkpoint} (exit code {proc.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.slow
def test_signal_at_a_random_step_then_resume_gives_identical_losses(tmp_path, reference, sig):
    _, want = reference
    step = random.Random().randint(3, 6)
    proc = subprocess.Popen(_cmd(tmp_path), cwd=ROOT, env=_faulted_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_step(proc, tmp_path, step, checkpoint=2)  # a resumable run: step 2's checkpoint is complete
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0, err[-3000:]
        assert "SIGTERM: saved step" in out and "rerun the same command to resume" in out, out[-2000:]
        saved = int(out.split("SIGTERM: saved step ")[1].split()[0])
        assert saved >= step and os.path.isdir(tmp_path / "checkpoints" / str(saved) / "data")
        assert not os.path.exists(tmp_path / "model")  # stopped early: no final export
    else:
        assert proc.returncode == -signal.SIGKILL
    run = _main(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed from step" in run.stdout, f"signal at step {step}"
    assert _losses(tmp_path) == want, f"signal {sig!r} at step {step}"


@pytest.mark.slow
def test_sigkill_just_after_a_checkpoint_starts_then_resume_gives_identical_losses(tmp_path, reference):
    """Killed 0.5 s after step 6's checkpoint directory appears (its async write may be torn): the rerun resumes
    from a complete checkpoint and logs the uninterrupted run's losses."""
    proc = subprocess.Popen(_cmd(tmp_path), cwd=ROOT, env=_faulted_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not os.path.exists(tmp_path / "checkpoints" / "6"):
        time.sleep(0.1)
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = _main(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed from step" in run.stdout
    assert _losses(tmp_path) == reference[1]


def _break(step_dir, fault):
    state = step_dir / "state"
    if fault == "truncated_array_file":
        files = [os.path.join(d, f) for d, _, fs in os.walk(state / "ocdbt.process_0" / "d") for f in fs]
        for path in files:
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
    elif fault == "deleted_manifest":
        os.remove(state / "manifest.ocdbt")
    elif fault == "deleted_metadata":
        os.remove(state / "_METADATA")
    else:
        os.remove(step_dir / "data" / "process_0-of-1.json")


@pytest.mark.slow
@pytest.mark.parametrize("fault_8, fault_6", [("truncated_array_file", "deleted_manifest"),
                                              ("deleted_metadata", "deleted_iterator_state")])
def test_broken_latest_checkpoints_fall_back_to_the_newest_good_step(tmp_path, reference, fault_8, fault_6):
    """Steps 8 and 6 broken two different ways: the run says so, moves them aside and resumes from step 4."""
    workdir = _copy_run(reference[0], tmp_path / "run")
    _break(workdir / "checkpoints" / "8", fault_8)
    _break(workdir / "checkpoints" / "6", fault_6)
    run = _main(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    for step in (8, 6):
        assert f"checkpoint step {step} is unusable" in run.stderr, run.stderr[-3000:]
        assert os.path.isdir(workdir / "bad_checkpoints" / str(step))
    assert "resuming from step 4, the newest good checkpoint (skipped steps [8, 6])" in run.stderr
    assert _losses(workdir) == reference[1]  # steps 5-8 retrained, their old rows replaced


@pytest.mark.slow
def test_wrong_shape_checkpoint_names_the_parameter_and_the_config(tmp_path, reference):
    workdir = tmp_path / "other"
    os.makedirs(workdir)
    shutil.copytree(reference[0] / "checkpoints", workdir / "checkpoints")
    run = _main(workdir, COMMON + ("data.vocab_size=500",))  # a new tokenizer -> another embedding size
    assert run.returncode == 1
    line = _error_line(run)
    assert "embed_tokens.embedding" in line and "in the checkpoint vs" in line, line
    assert "data.vocab_size" in line, line  # the config key that differs from the run that wrote it
    assert os.path.isdir(workdir / "checkpoints" / "8")  # a user error: nothing is quarantined


@pytest.mark.slow
def test_full_disk_stops_at_the_failed_save_then_resumes(tmp_path, reference):
    """The file-size limit (RLIMIT_FSIZE) makes every large write fail with EFBIG, as a full disk would."""
    proc = subprocess.Popen(_cmd(tmp_path), cwd=ROOT, env=_faulted_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    _wait_for_step(proc, tmp_path, 3, checkpoint=2)  # step 2's checkpoint is complete, step 4's not started
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (100_000, 100_000))
    t0 = time.time()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    line = _error_line(subprocess.CompletedProcess([], 1, out, err))
    assert "saving the checkpoint of step 4" in line and "last complete checkpoint is step 2" in line, line
    # surfaces at the first step after the background write fails, at the latest when the next save starts
    assert max(_losses(tmp_path)) <= 6
    assert time.time() - t0 < 120
    run = _main(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _losses(tmp_path) == reference[1]


@pytest.mark.parametrize("override, message", [
    ("checkpoint_every=0", "config.checkpoint_every must be an integer >= 1"),
    ("log_every=0", "config.log_every must be an integer >= 1"),
    ("dtype=float8", "unknown config.dtype 'float8'"),
    ("totl_steps=3", 'unknown config key --config.totl_steps; did you mean "total_steps"?'),
])
def test_bad_config_values_are_one_line_errors(tmp_path, override, message):
    run = _main(tmp_path / "w", (override,), timeout=120)
    assert run.returncode == 2
    line = _error_line(run)
    assert message in line, line
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_workdir_that_is_a_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    run = _main(path, ("total_steps=1",), timeout=120)
    assert run.returncode == 2
    assert "is a file; pass a directory" in _error_line(run)


# ---------------------------------------------------------------------------------------------------
# Hostile data: every malformed kind is a counted skip; an all-bad dataset stops the run


def _hostile_records():
    """{kind: (serialized record, expected skip reason or None for good)} built from one synthetic example."""
    import copy

    import msgpack

    from data_pipelines.schema import to_dict
    from data_pipelines.synthetic import SyntheticConfig, synthetic_sources

    good = synthetic_sources(8, seed=0, config=SyntheticConfig(width=56, height=56), tasks=("pointing",))
    goods = [to_dict(good["synthetic_pointing"][i]) for i in range(8)]
    base = goods[0]

    def mut(f):
        d = copy.deepcopy(base)
        d["id"] = f"bad-{f.__name__}"
        f(d)
        return msgpack.packb(d, use_bin_type=True)

    def string_coordinate(d): d["points"][0]["xy"][0] = ["0.5", 0.5]
    def one_element_point(d): d["points"][0]["xy"][0] = [0.5]
    def count_as_string(d): d["count"] = "3"
    def point_outside_image(d): d["points"][0]["xy"][0] = [1.5, 0.2]
    def nan_coordinate(d): d["points"][0]["xy"][0] = [float("nan"), 0.2]
    def roles_not_alternating(d): d["conversations"][0]["messages"].reverse()
    def image_data_not_bytes(d): d["images"][0]["data"] = 12345
    def missing_conversations(d): del d["conversations"]
    def missing_image_file(d): d["images"][0].update(data=None, path="no/such/image.png")
    def undecodable_image(d): d["images"][0]["data"] = b"\x89PNG but not really"
    def too_long(d): d["conversations"][0]["messages"][1]["content"] = "word " * 3000
    def undecodable_video(d): d["video"] = {"path": None, "data": b"\x00\x00\x00 ftyp garbage", "url": None,
                                            "start_s": None, "end_s": None}

    out = {f"good{i}": (msgpack.packb(g, use_bin_type=True), None) for i, g in enumerate(goods)}
    out["not_msgpack"] = (b"\xc1\xc1 not msgpack", "malformed_record")
    out["record_is_a_list"] = (msgpack.packb([1, 2, 3]), "malformed_record")
    for f, reason in [(string_coordinate, "bad_annotation"), (one_element_point, "bad_annotation"),
                      (count_as_string, "bad_annotation"), (point_outside_image, "bad_annotation"),
                      (nan_coordinate, "bad_annotation"), (roles_not_alternating, "bad_annotation"),
                      (image_data_not_bytes, "malformed_record"), (missing_conversations, "malformed_record"),
                      (missing_image_file, "missing_media"), (undecodable_image, "undecodable_media"),
                      (too_long, "too_long"), (undecodable_video, "encode_error")]:
        out[f.__name__] = (mut(f), reason)
    return out


def _write_prepared(root, name, records):
    """A prepared dataset (writer.py's index format) whose shard holds these raw records as they are."""
    from array_record.python.array_record_module import ArrayRecordWriter

    from data_pipelines import writer
    from data_pipelines.synthetic import synthetic_sources

    index = writer.write_examples([synthetic_sources(1, seed=0, tasks=("pointing",))["synthetic_pointing"][0]],
                                  str(root), name)
    w = ArrayRecordWriter(os.path.join(root, name, index["shards"][0]["file"]), "group_size:1")
    for r in records:
        w.write(r)
    w.close()
    index["shards"][0]["num_examples"] = index["num_examples"] = len(records)
    with open(os.path.join(root, name, "train.json"), "w") as f:
        json.dump(index, f)


def test_every_malformed_record_kind_is_a_counted_skip_with_its_reason():
    """In process: Prepare + packer classify each hostile record; no exception escapes."""
    from configs.demo import get_config
    from data_pipelines.packing import Skipped
    from data_pipelines.pipeline import Prepare
    from molmo2_jax.data import make_processor, model_config_for, pack_spec
    from molmo2_jax.processing.encode import ExampleEncoder

    import tempfile

    config = get_config()
    with tempfile.TemporaryDirectory() as tmp:
        processor = make_processor(config, tmp)
    spec = pack_spec(config, processor, model_config_for(config, processor))
    prepare = Prepare(ExampleEncoder(processor, mixture="stage1"), spec, ["hostile"], [None])
    for kind, (record, reason) in _hostile_records().items():
        out = prepare((0, record))
        if reason in (None, "too_long"):  # too_long is decided by the packer, against the pack budget
            assert isinstance(out, dict), (kind, out)
            too_long = any(x > c for x, c in zip(spec.size(out), spec.capacity()))
            assert too_long == (reason == "too_long"), kind
        else:
            assert isinstance(out, Skipped) and out.reason == reason, (kind, out)
            assert out.detail, kind


@pytest.mark.slow
def test_hostile_prepared_set_trains_and_counts_each_reason_then_all_bad_set_stops(tmp_path):
    records = _hostile_records()
    data = tmp_path / "data"
    _write_prepared(data, "pixmo_points_train", [r for r, _ in records.values()])
    _write_prepared(data, "pixmo_count_train", [r for k, (r, why) in records.items() if why])  # all bad
    common = ("total_steps=3", "log_every=1", "checkpoint_every=3", "batch_size=2", "data.eval_examples=0",
              "data.window=16", "data.mixture=stage1", f"data.path={data}")
    run = _main(tmp_path / "mixed", common + ("data.weights={'pixmo_points_train': 1.0}",))
    assert run.returncode == 0, run.stderr[-3000:]
    with open(tmp_path / "mixed" / "metrics.jsonl") as f:
        last = [json.loads(line) for line in f][-1]
    for reason in {why for _, why in records.values() if why}:
        assert last.get(f"data/skipped/pixmo_points_train/{reason}", 0) > 0, (reason, last)

    t0 = time.time()
    run = _main(tmp_path / "allbad", common + ("data.weights={'pixmo_count_train': 1.0}",
                                               "data.max_consecutive_skips=50"))
    line = _error_line(run)
    assert run.returncode == 1
    assert "dataset 'pixmo_count_train' yielded no usable record in its last 50 tries" in line, line
    assert time.time() - t0 < 300  # the load on a shared 2-core machine; alone it is seconds


def test_pack_iterator_on_an_all_bad_dataset_stops_instead_of_spinning():
    from data_pipelines.packing import PackIterDataset, PackSpec, Skipped
    from data_pipelines.schema import DataError

    import grain

    bad = grain.MapDataset.source([Skipped(0, "bad_annotation", "record 'x': broken")] * 10).repeat()
    it = iter(PackIterDataset(bad.to_iter_dataset(), PackSpec(seq_len=16), window=4, names=["all_bad"],
                              max_consecutive_skips=64))
    t0 = time.time()
    with pytest.raises(DataError, match=r"dataset 'all_bad' yielded no usable record in its last 64 tries.*"
                                        r"record 'x': broken"):
        next(it)
    assert time.time() - t0 < 5


# ---------------------------------------------------------------------------------------------------
# Decode budgets


def test_image_over_the_pixel_budget_is_refused_before_decoding(tmp_path):
    from PIL import Image

    from data_pipelines import media
    from data_pipelines.schema import BadSample, ImageRef
    from molmo2_jax.processing.errors import MediaError
    from molmo2_jax.processing.images import ImageConfig, load_image

    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    assert load_image(str(path), max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(str(path), max_pixels=59_999)
    with pytest.raises(BadSample, match="over the decode budget of 59999"):
        media.load_image(ImageRef(path=str(path)), max_pixels=59_999)
    assert 30_000_000 < ImageConfig().max_pixels <= 50_000_000  # the documented default (docs/reliability.md)


def test_video_over_the_frame_and_pixel_budgets_is_refused_before_decoding(tmp_path):
    import numpy as np

    from data_pipelines import media
    from molmo2_jax.processing.errors import MediaError
    from molmo2_jax.processing.video import load_video

    mp4 = media.encode_video(np.zeros((8, 64, 96, 3), np.uint8), fps=2)  # 4 s of black: a few KB
    assert len(mp4) < 10_000
    assert load_video(mp4, max_frames=4).frames.shape == (4, 64, 96, 3)
    with pytest.raises(MediaError, match="per-frame budget of 6000"):
        load_video(mp4, max_frames=4, max_frame_pixels=6000)
    with pytest.raises(MediaError, match=r"4 sampled frames of 96x64 need 24576 pixels, over the budget"):
        load_video(mp4, max_frames=4, max_video_pixels=20_000)


# ---------------------------------------------------------------------------------------------------
# Metrics rows of a resumed run


def test_truncate_metrics_keeps_rows_up_to_the_restored_step(tmp_path):
    from molmo2_jax.main import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in range(1, 8)) + '{"step": 8, "lo')
    assert truncate_metrics(str(path), 4) == 4  # steps 5, 6, 7 and the torn line
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------------
# generate / convert command lines


@pytest.mark.parametrize("args, message", [
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be >= 1, got -1"),
    (["--temperature", "-0.5"], "--temperature must be >= 0"),
    (["--greedy", "--temperature", "0.7"], "--greedy and --temperature 0.7 contradict"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
])
def test_generate_refuses_bad_arguments_in_one_line(capsys, args, message):
    from molmo2_jax.generation import main

    assert main(["--checkpoint", "/nonexistent", "--prompt", "hi", *args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {err.strip()[len('error: '):]}" and message in err and err.count("\n") == 1


def test_generate_refuses_prompts_past_the_positions_and_forged_special_tokens():
    from molmo2_jax.generation import check_prompt_length, check_prompt_text

    check_prompt_length(4000, 96, 4096)
    with pytest.raises(ValueError, match="the prompt is 50000 tokens.*exceeds the model's 4096 positions"):
        check_prompt_length(50_000, 16, 4096)
    check_prompt_text("Point to the im_patch.", {"<im_patch>": 1})
    with pytest.raises(ValueError, match="special token.*<im_patch>"):
        check_prompt_text("Describe <im_patch><im_patch>", {"<im_patch>": 1, "<im_col>": 2})


def test_generate_cli_prompt_longer_than_the_model_is_a_one_line_error(tiny_inference_dir):
    model_dir = str(tiny_inference_dir / "model")
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.generate", "--checkpoint", model_dir, "--prompt",
                          "word " * 5000], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "exceeds the model's" in _error_line(run)


def test_convert_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    from molmo2_jax.convert import main

    (tmp_path / "f").write_text("x")
    assert main(["--hf", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "is a file; pass a directory" in capsys.readouterr().err


def test_truncated_safetensors_and_bad_config_json_name_the_file(tmp_path):
    import numpy as np

    from molmo2_jax.checkpoints.safetensors_io import SafetensorsDir, save_sharded
    from molmo2_jax.model_config import config_from_hf

    save_sharded([("w", np.ones((64, 64), np.float32))], str(tmp_path))
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{path}.*truncated"):
        SafetensorsDir(str(tmp_path)).get("w")
    path.write_bytes(data[:20])
    with pytest.raises(ValueError, match=f"{path} is not a readable safetensors file"):
        SafetensorsDir(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"{tmp_path / 'config.json'} is not valid JSON"):
        config_from_hf(str(tmp_path))


@pytest.mark.parametrize("bad, message", [("int64", "has dtype int64"), ("nan", "contains NaN or Inf")])
def test_integer_or_nan_tensors_are_errors_naming_the_tensor(tmp_path, bad, message):
    import numpy as np

    from molmo2_jax.checkpoints.safetensors_io import SafetensorsDir, save_sharded

    arr = np.arange(6, dtype=np.int64) if bad == "int64" else np.array([1.0, np.nan], np.float32)
    with pytest.raises(ValueError, match=f"tensor 'bad.weight'.*{message}"):
        save_sharded([("bad.weight", arr)], str(tmp_path / "out"))  # export (ours -> HF)
    from safetensors.numpy import save_file

    save_file({"bad.weight": arr}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=f"tensor 'bad.weight'.*{message}"):
        SafetensorsDir(str(tmp_path)).get("bad.weight")  # import (HF -> ours)


def test_to_hf_export_of_a_demo_model_carries_its_tokenizer_and_processor(tiny_inference_dir, tmp_path):
    import molmo2_jax
    from molmo2_jax.convert import main

    assert main(["--to-hf", "--checkpoint", str(tiny_inference_dir / "model"), "--out", str(tmp_path / "hf")]) == 0
    assert os.path.exists(tmp_path / "hf" / "processor.json")
    model, processor = molmo2_jax.load(str(tmp_path / "hf"))
    assert processor is not None and model.cfg.text.vocab_size > 0
