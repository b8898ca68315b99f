"""Test, lint and docs sessions for the lightly-train workspace.

Every session builds its own virtual environment from the workspace lock file (uv.lock)
with ``uv sync``, installing non-editable wheels of the members it needs. Run all sessions
with ``nox``, one with ``nox -s core_only``; pass pytest options after ``--``.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
MEMBERS = {
    "lt_core": "lt-core",
    "lt_data": "lt-data",
    "lt_methods": "lt-methods",
    "lt_train": "lt-train",
    "lightly_train": "lightly-train",
}
# Packages of the stack that an lt-core-only install must not contain.
NOT_IN_CORE = [
    "torchvision",
    "lightning",
    "lightning_fabric",
    "kornia",
    "webdataset",
    "lightly",
    "numpy",
]


def _sync(session: nox.Session, *args: str) -> None:
    """Install members and dependency groups from uv.lock into the session's venv.

    Members are rebuilt every time: their version does not change between edits, so a
    reused environment would otherwise keep a stale, non-editable build.
    """
    rebuild = [arg for member in MEMBERS.values() for arg in ("--reinstall-package", member)]
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--no-editable",
        "--inexact",
        *rebuild,
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def _pytest(session: nox.Session, *paths: str) -> None:
    # `-m ""` also runs tests marked slow (pyproject deselects them for quick local runs).
    session.run("python", "-m", "pytest", "-m", "", *paths, *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("member", list(MEMBERS))
def tests(session: nox.Session, member: str) -> None:
    """Unit tests of one member, in an env holding only it and its declared dependencies."""
    groups = ["--group", "test"]
    if member == "lt_train":  # optional timm, MLflow, W&B, ONNX and Parquet paths, and the
        # report's browser test (selenium; Chromium from the system, installed by .ci/run)
        groups += ["--group", "timm", "--group", "onnx-test", "--group", "browser"]
        groups += ["--extra", "mlflow", "--extra", "wandb", "--extra", "onnx", "--extra", "parquet"]
    _sync(session, "--package", MEMBERS[member], *groups)
    _pytest(session, f"packages/{MEMBERS[member]}/tests")


@nox.session(python=PYTHON)
def core_only(session: nox.Session) -> None:
    """Install lt-core alone, prove the rest of the stack is absent, run its tests."""
    _sync(session, "--package", "lt-core", "--group", "test")
    check = (
        "import importlib.util, sys\n"
        f"present = [m for m in {NOT_IN_CORE!r} if importlib.util.find_spec(m) is not None]\n"
        "assert not present, f'lt-core-only install contains {present}'\n"
        "import lt_core\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{NOT_IN_CORE!r})\n"
        "assert not leaked, leaked\n"
        "print('lt-core alone: none of', " + repr(", ".join(NOT_IN_CORE)) + ", 'is importable')\n"
    )
    session.run("python", "-c", check)
    _pytest(session, "packages/lt-core/tests")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, import-linter boundary contracts and strict mypy for lt_core."""
    _sync(session, "--all-packages", "--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    session.run("mypy", "packages/lt-core/src")


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Cross-package end-to-end runs and the docs' code blocks (tests/)."""
    _sync(session, "--all-packages", "--group", "test", "--group", "onnx-test", "--all-extras")
    _pytest(session, "tests")
