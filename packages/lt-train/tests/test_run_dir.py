from __future__ import annotations

from pathlib import Path

import pytest

from lt_core import ConfigError
from lt_train._run_dir import RUN_FILES, RunDir, check_out_dir


def test_new_and_empty_folders_are_fine(tmp_path: Path) -> None:
    check_out_dir(tmp_path / "new" / "nested", overwrite=False)
    check_out_dir(tmp_path, overwrite=False)


def test_out_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_out_dir(f, overwrite=True)


def test_non_empty_out_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"exists and is not empty\. Pass overwrite=True"):
        check_out_dir(tmp_path, overwrite=False)
    check_out_dir(tmp_path, overwrite=True)


def test_overwrite_removes_only_run_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.prepare(overwrite=False)
    run.exported_last.write_bytes(b"old")
    run.metrics.write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "my_folder").mkdir()
    run.prepare(overwrite=True)
    assert not run.exported_last.exists() and not run.metrics.exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "my_folder").is_dir()
    assert "checkpoints" in RUN_FILES
