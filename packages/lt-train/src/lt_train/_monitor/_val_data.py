"""The labeled images of the online kNN probe (``val_data``): a folder with one subfolder
per class, or a CSV file of ``path,label`` rows. Listed and checked before any heavy work;
images are decoded later, and one that cannot be is skipped and counted."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass

import torch

from lt_core import DataError
from lt_data import IMAGE_EXTENSIONS, list_image_files

logger = logging.getLogger(__name__)

__all__ = ["ValListing", "list_val_data"]


@dataclass
class ValListing:
    """The labeled images of ``val_data``.

    Attributes:
        paths: Image file paths (absolute).
        labels: Each image's class index into ``classes``.
        classes: The class names, sorted.
    """

    paths: list[str]
    labels: list[int]
    classes: list[str]

    def split(self, bank_size: int, query_size: int, seed: int = 0) -> tuple[list[int], list[int]]:
        """Indices of the bank and of the queries: a fixed random order (``seed``, a
        generator of its own: no global random state is drawn from), the first
        ``query_size`` images are the queries, the next ``bank_size`` the bank. When the
        images are fewer than both together, they are shared in the same proportion
        (at least one query and one bank image)."""
        n = len(self.paths)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        if n >= bank_size + query_size:
            queries = query_size
        else:
            queries = min(n - 1, max(1, round(n * query_size / (bank_size + query_size))))
        return order[queries : queries + bank_size], order[:queries]


def list_val_data(val_data: str | os.PathLike[str]) -> ValListing:
    """List the labeled images of ``val_data``.

    A folder: each subfolder (hidden ones skipped) is a class named after it, holding its
    images at any depth; subfolders without images are skipped with a warning. A ``.csv``
    file: ``path,label`` rows (a first row ``path,label`` is a header), paths relative to
    the CSV's folder or absolute.

    Raises:
        DataError: A missing path, a CSV row that is not ``path,label`` or names a missing
            or non-image file, or fewer than 2 classes with images.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(val_data)))
    if not os.path.exists(path):
        raise DataError(
            f"val_data '{val_data}' does not exist. Fix: pass a folder with one subfolder of "
            "images per class, or a CSV file of path,label rows."
        )
    if os.path.isdir(path):
        listing = _from_folder(path)
    elif path.lower().endswith(".csv"):
        listing = _from_csv(path)
    else:
        raise DataError(
            f"val_data '{val_data}' is a file but not a .csv file. Fix: pass a folder with one "
            "subfolder of images per class, or a CSV file of path,label rows."
        )
    if len(listing.classes) < 2:
        found = f" ({listing.classes[0]!r})" if listing.classes else ""
        raise DataError(
            f"val_data '{val_data}' has {len(listing.classes)} class(es) with images{found}; "
            "the kNN probe needs at least 2. Fix: one subfolder per class (or CSV labels) "
            "with images of at least two classes, or leave val_data unset."
        )
    return listing


def _from_folder(path: str) -> ValListing:
    paths: list[str] = []
    labels: list[int] = []
    classes: list[str] = []
    with os.scandir(path) as entries:
        folders = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for name in folders:
        try:
            files = list_image_files(os.path.join(path, name))
        except DataError:
            logger.warning("val_data: the class folder '%s' has no images; skipped.", name)
            continue
        labels += [len(classes)] * len(files)
        paths += list(files)
        classes.append(name)
    return ValListing(paths, labels, classes)


def _from_csv(path: str) -> ValListing:
    root = os.path.dirname(path)
    rows: list[tuple[str, str]] = []
    missing: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line == 1 and [c.strip().lower() for c in row] == ["path", "label"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DataError(
                    f"val_data '{path}', line {line}: expected 'path,label', got "
                    f"{','.join(row)!r}. Fix: one image path and its label per line (quote "
                    "a path that holds a comma)."
                )
            file = os.path.join(root, os.path.expanduser(row[0].strip()))
            if os.path.splitext(file)[1].lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"val_data '{path}', line {line}: '{row[0]}' is not an image file "
                    f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}). Fix: list images only."
                )
            if not os.path.isfile(file):
                missing.append(f"line {line}: {row[0]}")
            rows.append((os.path.abspath(file), row[1].strip()))
    if missing:
        raise DataError(
            f"val_data '{path}' names {len(missing)} file(s) that do not exist, e.g. "
            f"{'; '.join(missing[:3])}. Paths are relative to the CSV's folder ({root}). "
            "Fix: correct or remove these rows."
        )
    classes = sorted({label for _, label in rows})
    index = {name: i for i, name in enumerate(classes)}
    return ValListing([p for p, _ in rows], [index[label] for _, label in rows], classes)
