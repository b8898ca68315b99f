"""Run the Python code blocks of README.md and of every page in docs/, and the examples.

Each page's ```python blocks run in order, in one namespace per page, from a scratch copy
of the repository root (see ``test_doc_page_runs``), so every block must import what it
uses and keep to small runs (``epochs=1``, ``image_size`` 32).

Skip convention: a block whose opening fence is directly preceded by the line
``<!-- skip -->`` (an HTML comment, invisible on GitHub) is not run, for example::

    <!-- skip -->
    ```python
    lightly_train.train(out="out/big", data="/my/100M/images", model=...)
    ```
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import runpy
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
BLOCK = re.compile(
    r"^(?P<skip><!--\s*skip\s*-->[ \t]*\n)?```python\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)


def _runnable_blocks(page: Path) -> list[str]:
    """The code of the ```python blocks of ``page`` that are not marked ``<!-- skip -->``."""
    return [m["code"] for m in BLOCK.finditer(page.read_text()) if not m["skip"]]


PAGES = [p for p in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))] if _runnable_blocks(p)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_doc_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pages run from a scratch copy of the repository root: they read docs/quickstart_data
    # and write out/ into the working directory.
    shutil.copytree(DOCS / "quickstart_data", tmp_path / "docs" / "quickstart_data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LT_DOCS_TEST", "1")
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(_runnable_blocks(page)):
        code = compile(block, f"{page}:block{i}", "exec")
        exec(code, namespace)


def _undefined_names(code: str) -> set[str]:
    """Names that ``code`` reads but neither imports, assigns, defines nor takes as a
    parameter anywhere (scope-blind, so it errs towards accepting)."""
    tree = ast.parse(code)
    defined, used = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    return used - defined


def _defined_classes_and_functions(code: str) -> set[str]:
    tree = ast.parse(code)
    kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    return {node.name for node in tree.body if isinstance(node, kinds)}


def _blocks_with_earlier_definitions() -> list[object]:
    params = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        earlier: set[str] = set()
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            code = match["code"]
            params.append(pytest.param(code, frozenset(earlier), id=f"{page.name}:block{i}"))
            earlier |= _defined_classes_and_functions(code)
    return params


@pytest.mark.parametrize(("code", "earlier"), _blocks_with_earlier_definitions())
def test_every_block_imports_what_it_uses(code: str, earlier: frozenset[str]) -> None:
    """Each ```python block, skipped ones too, imports every module and name it uses and
    assigns every variable, so it runs when pasted alone; only a class or function that
    an earlier block of the page defines (a wrapper written out once) may be reused. The
    page test above runs a page's blocks in one namespace and would not notice."""
    assert not _undefined_names(code) - earlier


def test_skip_marker_skips_only_the_next_block() -> None:
    text = (
        "<!-- skip -->\n```python\nraise AssertionError\n```\n\n"
        "```python\nx = 1\n```\n<!-- skip -->\n\n```python\ny = 2\n```\n"
    )
    blocks = [m["code"] for m in BLOCK.finditer(text) if not m["skip"]]
    assert blocks == ["x = 1\n", "y = 2\n"]


def test_custom_loop_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/examples/custom_loop.py trains with lt_data + lt_methods + lt_core alone."""
    import torch
    from torchvision.models import resnet18

    main = runpy.run_path(str(EXAMPLES / "custom_loop.py"), run_name="custom_loop")["main"]
    out = main(out=tmp_path / "model.pt", seed=0)
    assert "step 1/4 loss " in capsys.readouterr().out
    source = (EXAMPLES / "custom_loop.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+(lt_train|lightly_train)\b", source, re.M)

    torch.manual_seed(0)
    initial = resnet18()  # the example's model before training (same seed)
    trained = resnet18()
    trained.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert not torch.equal(trained.conv1.weight, initial.conv1.weight)  # pretrained
    assert torch.equal(trained.fc.weight, initial.fc.weight)  # not part of the features


def test_docs_exist() -> None:
    assert (DOCS / "custom_models.md").exists()
    assert os.path.getsize(DOCS / "custom_models.md") > 1000


def test_training_page_lists_every_optimizer() -> None:
    """(Its Options table is checked against TrainConfig in packages/lightly-train/tests.)"""
    from lt_train import OPTIMIZERS

    text = (DOCS / "training.md").read_text()
    for name in OPTIMIZERS:
        assert f"`{name}`" in text, name
