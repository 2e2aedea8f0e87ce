"""`./launch.sh --stages 1,2,3 --workdir W`: the whole recipe in one command, each stage from the previous one's
final weights, finished stages skipped and a stopped stage resumed (tiny model, synthetic data, a few steps)."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGE = '''from configs.demo import get_config as demo


def get_config():
    c = demo()
    c.total_steps = {steps}
    c.warmup_steps = 1
    c.batch_size = 2
    c.seq_len = 256
    c.checkpoint_every = 1
    c.log_every = 1
    c.data.num_examples = 40
    c.data.eval_examples = 0
    c.learning_rate.connector = c.learning_rate.vit = c.learning_rate.llm = {lr}
    return c
'''


def _launch(tmp_path, stages):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["bash", os.path.join(ROOT, "launch.sh"), "--cpu", "1", "--stages", stages, "--workdir",
                           str(tmp_path / "runs"), "--configs", str(tmp_path / "configs")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _params(path):
    from flax import nnx

    from molmo2_jax.checkpoints.orbax_io import load_params

    return {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(load_params(str(path)), nnx.Param))}


@pytest.mark.slow
def test_stages_chain_skip_finished_and_resume(tmp_path):
    (tmp_path / "configs").mkdir()
    for n, (steps, lr) in {1: (3, 3e-3), 2: (2, 0.0), 3: (2, 3e-3)}.items():
        (tmp_path / "configs" / f"stage{n}.py").write_text(STAGE.format(steps=steps, lr=lr))
    first = _launch(tmp_path, "1,2,3")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    runs = tmp_path / "runs"
    assert f"--config.init.checkpoint={runs}/stage1/model" in first.stdout
    assert f"--config.init.checkpoint={runs}/stage2/model" in first.stdout
    # stage 2 trains at learning rate 0: its final weights are stage 1's, so it really started from them
    one, two, three = (_params(runs / f"stage{n}" / "model") for n in (1, 2, 3))
    assert all(np.array_equal(one[k], two[k]) for k in one)
    assert any(not np.array_equal(two[k], three[k]) for k in two)

    # stage 3 stopped after its last checkpoint but before the final export: the rerun skips the finished
    # stages and resumes stage 3 instead of restarting it
    import shutil

    shutil.rmtree(runs / "stage3" / "model")
    again = _launch(tmp_path, "1,2,3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stage 1: already finished" in again.stdout and "stage 2: already finished" in again.stdout
    assert "resumed from step 2" in again.stdout
    assert (runs / "stage3" / "model" / "processor.json").exists()
