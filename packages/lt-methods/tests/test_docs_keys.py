"""docs/methods.md and docs/migrating.md document every option key of every method."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from lt_methods import DINO, SimCLR, get_method, list_methods

DOCS = Path(__file__).resolve().parents[3] / "docs"
pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")


def _keys(cls: type, prefix: str = "") -> set[str]:
    """Dotted names of the fields of dataclass ``cls`` and of its nested dataclasses."""
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        keys.add(prefix + f.name)
        for tp in typing.get_args(typing.get_type_hints(cls)[f.name]) or ():
            if dataclasses.is_dataclass(tp):
                keys |= _keys(tp, f"{prefix}{f.name}.")
    return keys


def _rows(text: str, heading: str) -> set[str]:
    """The first-column keys of the first table under ``heading``."""
    section = text.split(heading, 1)[1]
    table = re.search(r"^\|.*?(?=\n\n)", section, re.DOTALL | re.MULTILINE)
    assert table, heading
    return set(re.findall(r"^\| `([\w.]+)` \|", table.group(0), re.MULTILINE))


@pytest.mark.parametrize(("method", "heading"), [(SimCLR, "## SimCLR"), (DINO, "## DINO")])
def test_methods_page_has_a_row_per_method_arg(method: type, heading: str) -> None:
    text = (DOCS / "methods.md").read_text()
    fields = {f.name for f in dataclasses.fields(method.Args)}
    assert _rows(text, f"{heading} method_args") == fields


@pytest.mark.parametrize("page", ["methods.md", "migrating.md"])
@pytest.mark.parametrize("name", list_methods())
def test_pages_mention_every_key(page: str, name: str) -> None:
    text = (DOCS / page).read_text()
    cls = get_method(name)
    leaves = {key.rsplit(".", 1)[-1] for key in _keys(cls.Args) | _keys(cls.TransformArgs)}
    missing = sorted(key for key in leaves if key not in text)
    assert not missing, f"{page} does not mention {missing}"


def test_migrating_page_has_the_section_for_these_options() -> None:
    assert "\n## transform_args and method_args\n" in (DOCS / "migrating.md").read_text()
