"""The registry: names, lookup errors, registration rules, no lightly import at import time."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import ClassVar

import pytest

import lt_methods
from lt_core import ConfigError
from lt_methods import (
    DEFAULT_METHOD,
    DINO,
    SimCLR,
    SimCLRArgs,
    SimCLRTransformArgs,
    get_method,
    list_methods,
    register_method,
)

SRC = Path(lt_methods.__file__).parent


def test_builtin_methods_are_registered() -> None:
    assert {"simclr", "dino"} <= set(list_methods())
    assert list_methods() == sorted(list_methods())
    assert DEFAULT_METHOD in list_methods()


@pytest.mark.parametrize(("name", "cls"), [("simclr", SimCLR), ("SimCLR", SimCLR), ("DINO", DINO)])
def test_get_method_is_case_insensitive(name: str, cls: type) -> None:
    assert get_method(name) is cls


def test_unknown_method_lists_valid_names_and_closest_match() -> None:
    with pytest.raises(ConfigError) as info:
        get_method("dinoo")
    message = str(info.value)
    assert "Unknown method 'dinoo'" in message
    assert "Did you mean 'dino'?" in message
    for name in list_methods():
        assert name in message


def test_unknown_method_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Valid methods"):
        get_method("no_such_method")


def test_register_rejects_a_second_class_under_a_taken_name() -> None:
    class Other(SimCLR):
        name: ClassVar[str] = "SIMCLR"

    with pytest.raises(ConfigError, match="already registered"):
        register_method(Other)
    assert register_method(SimCLR) is SimCLR  # re-registering the same class is fine


def test_register_checks_class_attributes() -> None:
    class NoOptimizer(SimCLR):
        name: ClassVar[str] = "test-no-optimizer"
        default_optimizer: ClassVar[str] = "adam"

    with pytest.raises(ConfigError, match="default_optimizer must be one of"):
        register_method(NoOptimizer)
    with pytest.raises(ConfigError, match="subclass of Method"):
        register_method(SimCLRArgs)  # type: ignore[type-var]
    assert "test-no-optimizer" not in list_methods()


def test_configs_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        SimCLRTransformArgs((32, 32))  # type: ignore[misc]


def test_lightly_is_not_imported_at_module_level() -> None:
    """``import lt_methods`` stays light: lightly (which pulls in torchvision) is imported
    when a method is built. Checks the top-level imports of every module."""
    for path in SRC.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith("lightly"), f"{path.name} imports {name} at import time"


ALLOWED = (
    "lt_core",
    "lt_methods",
    "torch",
    "lightly.loss",
    "lightly.models",
    "lightly.utils.scheduler",
    "lightly.utils.lars",
)


def test_imports_stay_within_the_package_boundary() -> None:
    import sys

    for path in SRC.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                ok = root in sys.stdlib_module_names or root == "__future__"
                ok = ok or any(name == a or name.startswith(a + ".") for a in ALLOWED)
                assert ok, f"{path.name} imports {name}"
