"""Run the Python code blocks of every page in docs/, in order, one namespace per page."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_doc_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pages run from a scratch copy of the repository root: they read docs/quickstart_data
    # and write out/ into the working directory.
    shutil.copytree(DOCS / "quickstart_data", tmp_path / "docs" / "quickstart_data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LT_DOCS_TEST", "1")
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, match in enumerate(BLOCK.finditer(page.read_text())):
        code = compile(match.group(1), f"{page}:block{i}", "exec")
        exec(code, namespace)


def test_docs_exist() -> None:
    assert (DOCS / "custom_models.md").exists()
    assert os.path.getsize(DOCS / "custom_models.md") > 1000


def test_training_page_lists_every_option_and_optimizer() -> None:
    import dataclasses

    from lt_train import OPTIMIZERS, TrainConfig

    text = (DOCS / "training.md").read_text()
    options = text.split("\n## Options\n")[1].split("\n## ")[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", options, re.MULTILINE))
    assert rows == {f.name for f in dataclasses.fields(TrainConfig)}
    for name in OPTIMIZERS:
        assert f"`{name}`" in text, name
