from __future__ import annotations

import os
from pathlib import Path

import pytest

from lt_core import DataError
from lt_data import IMAGE_EXTENSIONS, list_image_files


def touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")  # listing does not decode


def test_extensions() -> None:
    assert IMAGE_EXTENSIONS == {
        ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"
    }  # fmt: skip


def test_recursive_sorted_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [tmp_path / "z.webp", tmp_path / "a" / "x.jpg", tmp_path / "a" / "b" / "c" / "y.png"]
    touch(*files)
    monkeypatch.chdir(tmp_path)
    result = list_image_files(".")
    assert result == sorted(files, key=lambda p: p.parts)
    assert all(p.is_absolute() for p in result)
    assert list_image_files(str(tmp_path)) == result


def test_extension_case_and_non_images(tmp_path: Path) -> None:
    images = [tmp_path / n for n in ("A.JPG", "b.PnG", "c.TIFF", "d.Jpeg", "e.bmp", "f.PGM")]
    touch(*images, tmp_path / "notes.txt", tmp_path / "noext", tmp_path / "x.jpg.bak")
    assert list_image_files(tmp_path) == sorted(images)


def test_hidden_files_and_folders_ignored(tmp_path: Path) -> None:
    touch(tmp_path / ".hidden.jpg", tmp_path / ".git" / "x.jpg", tmp_path / "ok" / "y.jpg")
    assert list_image_files(tmp_path) == [tmp_path / "ok" / "y.jpg"]


def test_symlinks_followed_and_cycle_terminates(tmp_path: Path) -> None:
    data, other = tmp_path / "data", tmp_path / "other"
    touch(data / "a" / "x.jpg", other / "o.png")
    (data / "a" / "loop").symlink_to(data, target_is_directory=True)  # a cycle
    (data / "self").symlink_to(".", target_is_directory=True)  # another cycle
    (data / "ext").symlink_to(other, target_is_directory=True)
    (data / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    result = list_image_files(data)
    assert result == [data / "a" / "x.jpg", data / "ext" / "o.png"]


def test_list_of_files_and_folders_deduplicated(tmp_path: Path) -> None:
    f1, f2, f3 = tmp_path / "d1" / "a.jpg", tmp_path / "d1" / "b.png", tmp_path / "d2" / "c.jpg"
    touch(f1, f2, f3)
    result = list_image_files([tmp_path / "d2", str(f1), tmp_path / "d1", tmp_path / "d1", f1])
    assert result == [f1, f2, f3]


def test_single_file(tmp_path: Path) -> None:
    touch(tmp_path / "img.jpeg")
    assert list_image_files(tmp_path / "img.jpeg") == [tmp_path / "img.jpeg"]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'.*nope' does not exist"):
        list_image_files(tmp_path / "nope")
    touch(tmp_path / "d" / "a.jpg")
    with pytest.raises(DataError, match="missing_dir"):
        list_image_files([tmp_path / "d", tmp_path / "missing_dir"])


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    touch(tmp_path / "empty" / ".hidden.jpg")
    with pytest.raises(DataError, match=r"is empty.*\.jpg"):
        list_image_files(tmp_path / "empty")


def test_folder_without_images(tmp_path: Path) -> None:
    touch(tmp_path / "a.txt", tmp_path / "sub" / "b.csv")
    with pytest.raises(DataError, match=r"contains no images.*\.csv, \.txt.*\.png") as e:
        list_image_files(tmp_path)
    assert isinstance(e.value, ValueError)


def test_explicit_unsupported_file(tmp_path: Path) -> None:
    touch(tmp_path / "labels.csv")
    with pytest.raises(DataError, match=r"labels\.csv' is not a supported image file.*\.webp"):
        list_image_files([tmp_path / "labels.csv"])


def test_empty_list_and_bad_entry() -> None:
    with pytest.raises(DataError, match="empty"):
        list_image_files([])
    with pytest.raises(DataError, match="must be paths"):
        list_image_files([3])  # type: ignore[list-item]


def test_unreadable_subfolder_is_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg", tmp_path / "locked" / "b.jpg")
    os.chmod(tmp_path / "locked", 0)
    try:
        if os.access(tmp_path / "locked", os.R_OK):
            pytest.skip("running as a user that ignores permissions")
        assert list_image_files(tmp_path) == [tmp_path / "a.jpg"]
    finally:
        os.chmod(tmp_path / "locked", 0o755)
