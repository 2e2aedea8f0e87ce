"""docs/recipe.md is generated and current; stage configs keep the official values unless the table says why."""

import subprocess
import sys

import pytest

from configs import recipe, stage1, stage2, stage3

STAGES = {1: stage1, 2: stage2, 3: stage3}


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_config_values_match_official_or_say_why(stage):
    assert recipe.undocumented_departures(stage, STAGES[stage].get_config()) == []


def test_an_unexplained_departure_is_caught():
    c = stage1.get_config()
    c.z_loss = 0.0
    c.component_warmup_steps.vit = 200
    problems = recipe.undocumented_departures(1, c)
    assert len(problems) == 2 and any("z_loss" in p for p in problems)
    assert any("pretrain.py vit_t_warmup=2000" in p for p in problems)


def test_docs_recipe_md_is_current():
    from scripts import make_recipe_doc

    with open(make_recipe_doc.DOC) as f:
        current = f.read()
    assert current == make_recipe_doc.render(), "docs/recipe.md is stale: run `python -m scripts.make_recipe_doc`"
    assert "| `component_warmup_steps.vit` | 2000 | 2000 | launch_scripts/pretrain.py" in current
    assert "| pixmo_cap_with_transcripts | captions | 0.6000 | 0.6000 | 707,000 |" in current


def test_check_flag_reports_a_stale_doc(tmp_path, monkeypatch):
    from scripts import make_recipe_doc

    stale = tmp_path / "recipe.md"
    stale.write_text("old\n")
    monkeypatch.setattr(make_recipe_doc, "DOC", str(stale))
    assert make_recipe_doc.main(["--check"]) == 1
    assert make_recipe_doc.main([]) == 0 and make_recipe_doc.main(["--check"]) == 0


def test_describe_prints_schedule_and_mixture_of_each_stage():
    text = recipe.describe(stage1.get_config())
    assert "lr[vit]: peak 6e-06, warmup 2,000 steps" in text and "lr[connector]: peak 0.0002, warmup 200" in text
    assert "pixmo_count_train" in text and "z_loss 0.0001" in text
    assert "residual dropout 0.1" in recipe.describe(stage3.get_config())


def test_make_recipe_doc_runs_as_one_command():
    run = subprocess.run([sys.executable, "-m", "scripts.make_recipe_doc", "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
