"""Real data path end to end on a local stand-in hub: the real huggingface_hub client downloads
small copies of the stage-1 datasets in their published layouts, the writer prepares them, and
the prepared examples are decoded and checked against the fixtures' ground truth."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import hub_fixtures
from data_pipelines import download, media, registry, writer
from data_pipelines.schema import deserialize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prepared(prep, name):
    """{upstream id: example}; PixMo-Points/Count examples come in both counting modes (`<url>#point_count`)."""
    src = writer.open_source(prep, name)
    return {ex.id.split("#")[0]: ex for ex in (deserialize(src[i]) for i in range(len(src)))}


@pytest.fixture
def stage1_run(hub, tmp_path, capsys):
    """Stage-1 fixtures downloaded with the real client and prepared: (hub, truth, raw, prep,
    printed output)."""
    truth = hub_fixtures.stage1(hub)
    raw, prep = str(tmp_path / "raw"), str(tmp_path / "prep")
    assert download.main(["--stage", "1", "--out", raw, "--workers", "4"]) == 0
    assert writer.main(["--stage", "1", "--raw", raw, "--out", prep]) == 0
    return hub, truth, raw, prep, capsys.readouterr().out


def test_stage1_download_and_writer_on_the_standin_hub(stage1_run):
    hub, truth, raw, prep, out = stage1_run
    # the hub client's own files are there, and were not read as data
    assert os.path.isdir(os.path.join(raw, "hf", "allenai", "pixmo-cap", ".cache", "huggingface"))
    sizes = writer.prepared_datasets(prep)
    assert set(sizes) == {s.name for s in registry.stage_datasets(1)}
    for name, t in truth.items():
        index = writer.load_index(prep, name)
        assert set(_prepared(prep, name)) == t.ids, name
        assert index["skipped"] == t.skipped, name
    # dead URLs, HTML pages, refused connections and sha mismatches counted by reason
    for reason in ("http_404 1", "html_page 1", "connection_refused 1", "sha256_mismatch 1"):
        assert reason in out, reason
    assert "bad_annotation 1" in out and "malformed_record 1" in out


def test_points_land_on_the_marked_pixels_and_held_out_splits_never_arrive(stage1_run):
    hub, truth, raw, prep, _ = stage1_run
    checked = 0
    for name in ("pixmo_points_train", "pixmo_points_high_freq_train", "pixmo_count_train",
                 "cosyn_point"):
        root = writer.load_index(prep, name)["media_root"]
        for ex_id, ex in _prepared(prep, name).items():
            pixels = media.load_image(ex.images[0], root)
            h, w = pixels.shape[:2]
            want = truth[name].points[ex_id]
            got = [sorted(p.xy) for p in ex.points]
            assert len(got) == len(want) and all(
                np.allclose(g, sorted(w_), atol=1e-4) for g, w_ in zip(got, want)), (name, ex_id)
            for pts in ex.points:
                for x, y in pts.xy:
                    # 0-100 sources are scaled to (w-1, h-1) by the fixture, pixel ones to (w, h)
                    xi, yi = min(int(round(x * w)), w - 1), min(int(round(y * h)), h - 1)
                    patch = pixels[max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2].reshape(-1, 3)
                    assert (np.abs(patch.astype(int) - hub_fixtures.MARK).sum(1) < 60).any(), \
                        (name, ex_id, x, y)
                    checked += 1
        assert not truth[name].held_out_ids & set(_prepared(prep, name)), name
    assert checked >= 12
    # held-out images were never even fetched
    held = {u for t in truth.values() for u in t.held_out_ids if u.startswith("http")}
    fetched = {hub.url + p for p in hub.fetched("/web/")}
    assert held and not held & fetched


def test_rerun_fetches_nothing_verified(stage1_run):
    hub, truth, raw, prep, _ = stage1_run
    before = len(hub.requests)
    assert download.main(["--stage", "1", "--out", raw, "--workers", "4"]) == 0
    new = hub.requests[before:]
    refetched = {p for m, p in new if m == "GET" and (p.startswith("/web/") or "/resolve/" in p)}
    assert refetched == {"/web/cap/dead.jpg", "/web/points/tampered.png"}  # only the failures


def _cli(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT)  # HF_ENDPOINT etc. come from the `hub` fixture
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_download_writer_inspect_and_5_tiny_steps_from_the_cli(hub, tmp_path):
    """As a new user: the four commands, no manual step, on the stand-in hub."""
    truth = hub_fixtures.stage1(hub)
    raw, prep, work = tmp_path / "raw", tmp_path / "prep", tmp_path / "run"
    run = _cli("data_pipelines.download", "--stage", "1", "--out", str(raw))
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "downloaded: 6 datasets" in run.stdout and "html_page 1" in run.stdout
    run = _cli("data_pipelines.writer", "--stage", "1", "--raw", str(raw), "--out", str(prep))
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    run = _cli("data_pipelines.inspect", "--config", "configs/stage1.py", "--data", str(prep),
               "--samples", "2000")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert all(name in run.stdout for name in truth)
    run = _cli("molmo2_jax.main", "--config", "configs/stage1.py", "--workdir", str(work),
               "--config.model.name=tiny", f"--config.data.path={prep}", "--config.total_steps=5",
               "--config.batch_size=4", "--config.data.crop_group_rows=2", "--config.grad_accum_steps=2",
               "--config.seq_len=512", "--config.dtype=float32",
               "--config.log_every=1", "--config.checkpoint_every=5", "--config.warmup_steps=1",
               "--config.data.max_crops=8", "--config.data.max_crops_per_image=2", timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    rows = [json.loads(line) for line in open(work / "metrics.jsonl") if '"loss"' in line]
    assert [r["step"] for r in rows][-1] == 5 and all(np.isfinite(r["loss"]) for r in rows)
    # every stage-1 dataset is in the training mixture with a share
    assert {k[len("data/examples/"):] for k in rows[-1] if k.startswith("data/examples/")} == \
        set(truth)


def test_cosyn_qa_configs_and_splits_with_explanations(hub, tmp_path):
    single, multi = hub_fixtures.cosyn_400k(hub), hub_fixtures.cosyn_multidoc(hub)
    raw, prep = str(tmp_path / "raw"), str(tmp_path / "prep")
    names = ["cosyn_chart_exp", "cosyn_multidoc_chart_exp"]
    summary = download.download_datasets([registry.get(n) for n in names], raw, workers=2)
    assert summary.ok == names
    for name, t in zip(names, (single, multi)):
        index = writer.prepare(name, raw, prep)
        got = _prepared(prep, name)
        assert set(got) == t.ids and index["skipped"] == t.skipped, name
    ex = _prepared(prep, "cosyn_chart_exp")["chart_train_0"]
    assert ex.conversations[0].messages[1].content == "It reads 4. Answer: 4"
    assert ex.conversations[0].style == "cosyn_chart_exp"
    assert media.load_image(ex.images[0]).shape == (20, 30, 3)
    assert len(_prepared(prep, "cosyn_multidoc_chart_exp")["doc0"].images) == 2


def test_every_stage1_dataset_reaches_training_batches(stage1_run):
    """The training mixture over the prepared stand-in data (weights as main.py computes them,
    byte-level stand-in encoder) draws examples of every stage-1 dataset, media decoded."""
    from data_pipelines.packing import PackSpec, default_token_fields
    from data_pipelines.pipeline import prepared_pipeline
    from byte_encoder import ByteLevelEncoder
    from molmo2_jax.config_utils import load_config_file as load_config
    from molmo2_jax.data import prepared_mixture

    _, truth, _, prep, _ = stage1_run
    cfg = load_config(os.path.join(ROOT, "configs", "stage1.py"))
    cfg.data.path = prep
    weights, missing = prepared_mixture(cfg)
    assert not missing and set(weights) == set(truth) and min(weights.values()) > 0
    enc = ByteLevelEncoder()
    spec = PackSpec(seq_len=512, media=enc.media_fields(max_crops=16, max_frames=4),
                    token_fields=default_token_fields(pad_id=0))
    it = iter(prepared_pipeline(prep, weights, enc, spec, batch_size=2, pack_window=8))
    for _ in range(60):  # until every dataset was drawn (the smallest share is ~5%)
        next(it)
        counts = dict(zip(it.counters.names, it.counters.examples.tolist()))
        if all(counts[n] > 0 for n in truth):
            break
    assert all(counts[n] > 0 for n in truth), counts
    assert not it.counters.skipped.any(), it.counters.skipped_by_dataset()
