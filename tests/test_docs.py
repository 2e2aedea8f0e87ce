"""The docs cannot drift from the code: links resolve, named functions exist, snippets run, tables are current."""

import ast
import glob
import importlib.util
import os
import re
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
SNIPPET = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", re.S | re.M)


def _module(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _names(path: str) -> set[str]:
    """Top-level functions/classes/assignments of a Python file, and `Class.method` for methods."""
    tree = ast.parse(open(path).read())
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
            if isinstance(node, ast.ClassDef):
                out |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, (ast.FunctionDef,))}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return out


def _links():
    for doc in DOCS:
        text = open(doc).read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no links
        for label, target in LINK.findall(text):
            if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
                yield doc, label, target


def test_docs_have_links_and_snippets_to_check():
    assert len(list(_links())) > 100
    assert len(list(_snippets())) >= 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_resolves_and_names_a_real_function(doc):
    problems = []
    for d, label, target in _links():
        if d != doc:
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(doc), target.split("#")[0]))
        if not os.path.exists(path):
            problems.append(f"{target}: no such file")
            continue
        name = label.strip("`")
        if path.endswith(".py") and label.startswith("`") and not name.endswith(".py") and "/" not in name:
            if name not in _names(path):
                problems.append(f"{target}: no `{name}` defined there")
    assert problems == [], f"{os.path.relpath(doc, ROOT)}: " + "; ".join(problems)


def test_the_link_check_catches_a_renamed_function(tmp_path):
    assert "molmo2_mask" in _names(os.path.join(ROOT, "molmo2_jax", "attention.py"))
    assert "Molmo2.image_features" in _names(os.path.join(ROOT, "molmo2_jax", "model.py"))
    assert "molmo2_masks" not in _names(os.path.join(ROOT, "molmo2_jax", "attention.py"))


def _snippets():
    for doc in DOCS:
        for i, (_, code) in enumerate(SNIPPET.findall(open(doc).read())):
            yield pytest.param(textwrap.dedent(code), id=f"{os.path.relpath(doc, ROOT)}#{i}")


@pytest.mark.parametrize("code", list(_snippets()))
def test_every_python_snippet_runs(code, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(ROOT)
    monkeypatch.chdir(tmp_path)  # files a snippet writes (scene.png) land in a temporary directory
    exec(compile(code, "<doc snippet>", "exec"), {"__name__": "__doc_snippet__"})


def test_generated_tables_are_current():
    mod = _module(os.path.join(ROOT, "docs", "make_tables.py"))
    assert mod.stale() == [], "run python docs/make_tables.py"


def test_a_stale_table_is_detected():
    mod = _module(os.path.join(ROOT, "docs", "make_tables.py"))
    text = "a\n<!-- generated:rules -->\nold\n<!-- /generated:rules -->\nb\n"
    new = mod.render(text, "rules", mod.rules_table())
    assert new != text and "old" not in new and "| `batch` |" in new
    assert mod.render(new, "rules", mod.rules_table()) == new


def test_every_figure_is_checked_in_and_used_by_a_doc():
    mod = _module(os.path.join(ROOT, "docs", "make_figures.py"))
    text = "".join(open(d).read() for d in DOCS)
    for name in [*mod.FIGURES, *mod.RUN_FIGURES]:
        assert os.path.exists(os.path.join(ROOT, "docs", "figures", f"{name}.png")), name
        assert f"figures/{name}.png" in text, f"no doc shows figures/{name}.png"


def test_mask_figure_is_drawn_from_molmo2_mask():
    import numpy as np

    from molmo2_jax.attention import molmo2_mask

    mod = _module(os.path.join(ROOT, "docs", "make_figures.py"))
    info, kind = mod.packed_mask_example()
    mask = np.asarray(molmo2_mask(info, info))[0, 0]
    b0, b1 = kind.index("branch 0"), kind.index("branch 1")
    assert not mask[b1, b0] and mask[b1, b0 - 1]  # branches see the prefix, not each other
    v = kind.index("vision")
    assert mask[v, v + 5] and not mask[v + 5 - 1, len(kind) - 1]  # vision block is bidirectional
    assert mod.attention_mask().size[0] > 200
