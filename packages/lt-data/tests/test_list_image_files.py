from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest

from lt_core import DataError
from lt_data import IMAGE_EXTENSIONS, FileList, ImageDataset, list_image_files


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
    assert isinstance(result, FileList)
    assert result == sorted(files, key=lambda p: p.parts)
    assert all(isinstance(p, str) and os.path.isabs(p) for p in result)
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
    result = list_image_files(data)
    assert result == [data / "a" / "x.jpg", data / "ext" / "o.png"]


def test_folder_reachable_through_several_links_listed_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    touch(data / "real" / "x.jpg", data / "z.jpg")
    (data / "b_link").symlink_to(data / "real", target_is_directory=True)
    (data / "a_link").symlink_to(data / "real", target_is_directory=True)
    # The first path in path-component order wins, whatever order the threads scan in.
    assert list_image_files(data) == [data / "a_link" / "x.jpg", data / "z.jpg"]


def test_broken_symlink_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    touch(tmp_path / "ok.jpg")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / ".hidden_broken.jpg").symlink_to(tmp_path / "missing.jpg")
    with caplog.at_level(logging.WARNING):
        assert list_image_files(tmp_path) == [tmp_path / "ok.jpg"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, messages
    assert "Skipping broken symbolic link" in messages[0] and "broken.jpg" in messages[0]
    assert "missing.jpg" in messages[0]


def test_self_link_loop_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    touch(tmp_path / "ok.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")  # ELOOP when followed
    with caplog.at_level(logging.WARNING):
        assert list_image_files(tmp_path) == [tmp_path / "ok.jpg"]
    assert any("loop.jpg" in r.getMessage() for r in caplog.records)


def test_path_component_order(tmp_path: Path) -> None:
    # Plain string order would put "a.b/x.jpg" and "a-b.jpg" before "a/y.jpg".
    names = ["a/y.jpg", "a.b/x.jpg", "a-b.jpg", "a0.jpg", "B.jpg", "b/c/d.jpg", "b/c.jpg",
             "b/c0/e.jpg", "ü.jpg", "z/ä.png"]  # fmt: skip
    files = [tmp_path / n for n in names]
    touch(*files)
    result = list_image_files(tmp_path)
    assert list(result) == [str(p) for p in sorted(files, key=lambda p: p.parts)]


def test_many_folders_scanned_in_parallel(tmp_path: Path) -> None:
    files = [tmp_path / f"d{i % 37}" / f"e{i % 5}" / f"{i:04d}.jpg" for i in range(600)]
    touch(*files, *(tmp_path / f"d{i}" / "notes.txt" for i in range(37)))
    result = list_image_files(tmp_path)
    assert list(result) == [str(p) for p in sorted(files, key=lambda p: p.parts)]


def test_list_of_files_and_folders_deduplicated(tmp_path: Path) -> None:
    f1, f2, f3 = tmp_path / "d1" / "a.jpg", tmp_path / "d1" / "b.png", tmp_path / "d2" / "c.jpg"
    touch(f1, f2, f3)
    result = list_image_files([tmp_path / "d2", str(f1), tmp_path / "d1", tmp_path / "d1", f1])
    assert result == [f1, f2, f3]


def test_overlapping_entries_merged_in_order(tmp_path: Path) -> None:
    files = [tmp_path / "d" / n for n in ("a.jpg", "sub/b.jpg", "sub/c.jpg", "z.jpg")]
    other = tmp_path / "e" / "f.jpg"
    touch(*files, other)
    result = list_image_files([other, tmp_path / "d" / "sub", tmp_path / "d", files[3]])
    assert result == [*files, other]
    assert list_image_files([tmp_path / "e", tmp_path / "d"]) == [*files, other]


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


def test_unreadable_subfolder_is_warned_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    touch(tmp_path / "a.jpg", tmp_path / "locked" / "b.jpg", tmp_path / "z" / "c.jpg")
    scandir = os.scandir

    def fake_scandir(path: bytes) -> object:
        if os.fsdecode(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    with caplog.at_level(logging.WARNING):
        assert list_image_files(tmp_path) == [tmp_path / "a.jpg", tmp_path / "z" / "c.jpg"]
    assert "Skipping the unreadable folder" in caplog.text and "locked" in caplog.text
    monkeypatch.setattr(os, "scandir", lambda path: fake_scandir(path + b"locked"))
    with pytest.raises(DataError, match=r"Cannot read the data folder.*permissions"):
        list_image_files(tmp_path)


def test_unreadable_subfolder_is_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg", tmp_path / "locked" / "b.jpg")
    os.chmod(tmp_path / "locked", 0)
    try:
        if os.access(tmp_path / "locked", os.R_OK):
            pytest.skip("running as a user that ignores permissions")
        assert list_image_files(tmp_path) == [tmp_path / "a.jpg"]
    finally:
        os.chmod(tmp_path / "locked", 0o755)


def test_file_list_sequence() -> None:
    paths = ["/d/a.jpg", "/d/ünï/ß.png", "rel/c.webp", "/d/e.jpg"]
    files = FileList(paths)
    assert len(files) == 4 and list(files) == paths and files == paths
    assert files[1] == paths[1] and files[-1] == paths[-1] and files[-4] == paths[0]
    with pytest.raises(IndexError):
        files[4]
    with pytest.raises(IndexError):
        files[-5]
    assert isinstance(files[1:3], FileList) and files[1:3] == paths[1:3]
    assert files[::-2] == paths[::-2] and files[3:1] == [] and files[:] == files
    assert Path("/d/e.jpg") in files and "/d/x.jpg" not in files and 3 not in files
    assert files.index(Path(paths[2])) == 2 and files.index("/d/e.jpg", 1) == 3
    with pytest.raises(ValueError):
        files.index("/d/a.jpg", 1)
    assert files == FileList(Path(p) for p in paths) and files != paths[:3] and files != 1
    assert FileList(files) == files and FileList() == []
    assert files.nbytes == sum(len(p.encode()) for p in paths) + 8 * 4
    assert "4 files" not in repr(files) and "5 files" in repr(FileList([*paths, "x"]))


def test_file_list_pickles_compactly(tmp_path: Path) -> None:
    touch(*(tmp_path / f"d{i % 3}" / f"{i}.jpg" for i in range(100)))
    files = list_image_files(tmp_path)
    data = pickle.dumps(files)
    assert len(data) < files.nbytes + 200
    assert pickle.loads(data) == files and list(pickle.loads(data)) == list(files)


def test_image_dataset_shares_the_file_list(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg", tmp_path / "b" / "c.png")
    files = list_image_files(tmp_path)
    dataset = ImageDataset(files, (8, 8))
    assert dataset.files._buffer is files._buffer
    assert [dataset.path(i) for i in range(2)] == list(files)
