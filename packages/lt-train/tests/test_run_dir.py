from __future__ import annotations

from pathlib import Path

import pytest

from lt_core import ConfigError
from lt_train._run_dir import PREVIOUS_PREFIX, RUN_FILES, RunDir, check_out_dir


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


def test_overwrite_moves_only_run_files_aside_until_discarded(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.prepare(overwrite=False) is None
    run.exported_last.write_bytes(b"old")
    run.metrics.write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "my_folder").mkdir()
    aside = run.prepare(overwrite=True)
    assert aside is not None and aside.name.startswith(PREVIOUS_PREFIX)
    assert not run.exported_last.exists() and not run.metrics.exists()
    assert (aside / "exported_models" / "exported_last.pt").read_bytes() == b"old"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "my_folder").is_dir()
    assert "checkpoints" in RUN_FILES
    run.discard_previous()
    assert not aside.exists()


def test_prepare_sweeps_temp_files_of_killed_writes(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.prepare(overwrite=False)
    leftover = run.checkpoints / ".last.ckpt.tmp-123-abcd"
    leftover.write_bytes(b"half")
    run.prepare(overwrite=False)
    assert not leftover.exists()


def test_interrupted_run_is_protected_and_named(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.prepare(overwrite=False)
    run.write_state("running", step=7, max_steps=20)
    with pytest.raises(
        ConfigError, match=r"interrupted run, stopped before its first checkpoint \(step 7 of 20\)"
    ):
        check_out_dir(tmp_path, overwrite=False)
    check_out_dir(tmp_path, overwrite=False, resume=True)  # no checkpoint: from step 0
    run.last_checkpoint.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"holds an interrupted run \(step 7 of 20\)"):
        check_out_dir(tmp_path, overwrite=False)
    run.write_state("failed", step=7, max_steps=20)
    with pytest.raises(ConfigError, match=r"holds a failed run \(step 7 of 20\)"):
        check_out_dir(tmp_path, overwrite=False)
    check_out_dir(tmp_path, overwrite=False, resume=True)
    run.write_state("finished", step=20, max_steps=20)
    with pytest.raises(ConfigError, match="nothing to resume"):
        check_out_dir(tmp_path, overwrite=False, resume=True)


def test_unwritable_out_fails_in_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def refuse(**kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(ConfigError, match="Cannot write to the out folder"):
        check_out_dir(tmp_path / "new", overwrite=False)
