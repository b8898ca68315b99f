"""The command line answers a typo before torch is imported."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from lightly_train import _early


def _keyword_options(function: object) -> set[str]:
    return {
        name
        for name, p in inspect.signature(function).parameters.items()  # type: ignore[arg-type]
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def test_early_lists_equal_the_functions_options() -> None:
    from lightly_train import _train, embed, export
    from lt_train._embed._writers import EMBED_FORMATS
    from lt_train._export._export import EXPORT_FORMATS, PARTS

    assert set(_early.TRAIN_OPTIONS) == set(_train._OPTIONS)
    assert set(_early.EXPORT_OPTIONS) == _keyword_options(export)
    assert set(_early.EMBED_OPTIONS) == _keyword_options(embed)
    assert _early.EXPORT_FORMATS == EXPORT_FORMATS and _early.EXPORT_PARTS == PARTS
    assert _early.EMBED_FORMATS == EMBED_FORMATS


_CASES = [
    (["train", "out=o", "data=d", "model=m", "epcohs=1"], "Unknown option 'epcohs'. "
     "Did you mean 'epochs'?"),
    (["embed", "out=e.csv", "data=d", "checkpoint=c.ckpt", "format=cvs"],
     "Unknown format 'cvs' of embed. Did you mean 'csv'?"),
    (["export", "out=m.pt", "checkpoint=missing.ckpt"], "Checkpoint 'missing.ckpt' does not exist"),
    (["export", "out=m.pt", "checkpoint=c.ckpt", "part=modle"], "Unknown part 'modle'"),
    (["train", "out=o"], "train needs data=..., model=..."),
    (["pretrain", "out=o", "epochs"], "Cannot parse argument 'epochs'"),
    (["report", "out=missing_run"], "The out folder 'missing_run' does not exist"),
    (["report", "out=c.ckpt"], "is a file, not a folder"),
    (["report", "outt=o"], "Did you mean 'out'?"),
]  # fmt: skip


def test_typos_are_answered_before_torch_is_imported(tmp_path: Path) -> None:
    (tmp_path / "c.ckpt").write_bytes(b"")
    script = (
        "import sys\n"
        "from lightly_train._cli import main\n"
        f"for args in {[args for args, _ in _CASES]!r}:\n"
        "    assert main(args) == 2, args\n"
        "heavy = [m for m in ('torch', 'torchvision', 'lightning_fabric', 'lt_core') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(_CASES)
    for line, (_, message) in zip(lines, _CASES):
        assert line.startswith("lightly-train: error: ") and message in line


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lightly_train._cli import main

    assert main([flag]) == 0
    assert capsys.readouterr().out.startswith("lightly-train 0.")


def test_help_shows_the_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from lightly_train._cli import main

    assert main(["help"]) == 0
    out = capsys.readouterr().out
    assert "method=None  (simclr)" in out
    assert "torch|csv|lightly_csv|parquet" in out
    assert "format=package_default|" in out
