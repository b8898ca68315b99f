"""The ``lightly-train`` command line: ``lightly-train train key=value ...``."""

from __future__ import annotations

import ast
import errno
import inspect
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lightly_train import _early

# Nothing here imports torch before the early checks (lightly_train._early): lt_core and
# the commands are imported in main() once the options passed them.

__all__ = ["main", "parse_key_values"]

COMMANDS = (
    "train",
    "pretrain",
    "export",
    "embed",
    "make-shards",
    "make_shards",
    "report",
    "help",
    "list_models",
    "list_methods",
)
_NEED_OPTIONS = ("train", "pretrain", "export", "embed", "make-shards", "make_shards", "report")


def _asks_help(rest: list[str]) -> bool:
    return any(a in ("help", "-h", "--help") for a in rest)


USAGE = """\
Usage:
  lightly-train train out=OUT data=DATA model=MODEL [key=value ...]   (or: pretrain)
  lightly-train export out=FILE checkpoint=CKPT [part=model|embedding_model|wrapped_model]
                                [format=package_default|torch_state_dict|torch_model|onnx]
  lightly-train embed out=FILE data=DATA checkpoint=CKPT [format=torch|csv|lightly_csv|parquet]
  lightly-train make-shards data=DATA out=OUT [max_count=10000 max_size=3e9]
                                pack an image folder into WebDataset tar shards
  lightly-train report out=OUT  write OUT/report.html, the run's report page (also for
                                an interrupted or still running run)
  lightly-train help            show this help and every train option
  lightly-train COMMAND help    the options of one command; -v for debug output
  lightly-train list_models     model names accepted by model=
  lightly-train list_methods    method names accepted by method=
  lightly-train --version       the installed version

Nested options use dots, lists use brackets:
  lightly-train train out=out/my_experiment data=my_data_dir model=torchvision/resnet18 \\
      method=dino epochs=100 batch_size=128 optim_args.lr=0.1 transform_args.image_size=[32,32]
"""


def parse_value(text: str) -> Any:
    """Parse a command-line value: JSON or Python literals (numbers, lists, true/false/null,
    True/False/None); ``[a,b]`` of bare words is a list of strings; anything else is a string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    if text.startswith("[") and text.endswith("]"):
        return [parse_value(item.strip()) for item in text[1:-1].split(",") if item.strip()]
    return text


def parse_key_values(args: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a=1", "b.c=[1,2]"]`` into ``{"a": 1, "b": {"c": [1, 2]}}``.

    Raises:
        ConfigError: An argument without ``=``, a key given twice.
    """
    from lt_core import ConfigError

    return _parse(args, ConfigError)


def _parse(args: Sequence[str], ConfigError: Callable[[str], Exception]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"Cannot parse argument '{arg}': expected key=value, e.g. epochs=10.")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"'{key}' sets a nested key of '{part}', which already has a value."
                )
            node = child
        if parts[-1] in node:
            raise ConfigError(f"Option '{key}' is given twice.")
        node[parts[-1]] = parse_value(text)
    return result


def _help(command: str = "train") -> str:
    from lightly_train import _train
    from lt_methods import DEFAULT_METHOD

    doc = inspect.getdoc(_train.train) or ""
    signature = inspect.signature(_train.train)
    real = {"method": DEFAULT_METHOD}  # None stands for these
    defaults = "\n".join(
        f"  {name}={'(required)' if p.default is inspect.Parameter.empty else repr(p.default)}"
        f"{f'  ({real[name]})' if name in real and p.default is None else ''}"
        for name, p in signature.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )
    return f"{USAGE}\nOptions of {command} (defaults):\n{defaults}\n\n{doc}\n"


def _command_help(command: str) -> str:
    if command in ("train", "pretrain"):
        return _help(command)
    import lightly_train

    function = getattr(lightly_train, command.replace("-", "_"), None)
    doc = inspect.getdoc(function) if function is not None else None
    return f"{USAGE}\n{doc or ''}\n"


def _train_command(command: str, options: dict[str, Any]) -> None:
    from lightly_train import train

    train(**options)  # process 0 logs where the model was exported


def _make_shards_command(options: dict[str, Any]) -> None:
    from lightly_train import make_shards
    from lt_core import ConfigError

    unknown = set(options) - {"data", "out", "max_count", "max_size", "pattern", "progress"}
    if unknown:
        raise ConfigError(
            f"Unknown option(s) of make-shards: {', '.join(sorted(unknown))}. Valid: "
            "data, out, max_count, max_size, pattern, progress."
        )
    missing = [key for key in ("data", "out") if key not in options]
    if missing:
        raise ConfigError(
            f"make-shards needs {' and '.join(k + '=...' for k in missing)}, e.g. "
            "lightly-train make-shards data=my_images out=my_shards."
        )
    stats = make_shards(**options)
    print(f"Wrote {stats.num_images} images into {len(stats.shards)} shards: {stats.pattern}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 for usage and configuration errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-v", "--verbose") for a in args):
        args = [a for a in args if a not in ("-v", "--verbose")]
        os.environ["LIGHTLY_TRAIN_LOG_LEVEL"] = "DEBUG"
    if args and args[0] in ("--version", "-V", "version"):
        print(f"lightly-train {_version()}")
        return 0
    if not args or args[0] in ("help", "-h", "--help"):
        print(_help())
        return 0
    command, rest = args[0], args[1:]
    if command in COMMANDS and ((not rest and command in _NEED_OPTIONS) or _asks_help(rest)):
        print(_command_help(command))
        return 0
    options: dict[str, Any] = {}
    try:  # before torch is imported: a typo is answered at once
        if command in _NEED_OPTIONS:
            options = _parse(rest, _early.EarlyError)
            _early.check(command, options)
    except _early.EarlyError as e:
        print(f"lightly-train: error: {e}", file=sys.stderr)
        return 2
    from lt_core import (
        LightlyTrainError,
        LossNotFiniteError,
        TrainingInterrupted,
        closest_match_hint,
    )

    try:
        if command in ("train", "pretrain"):
            _train_command(command, options)
        elif command in ("export", "embed", "report"):
            from lightly_train import _cli_commands

            run = getattr(_cli_commands, f"{command}_command")
            return int(run(options))
        elif command in ("make-shards", "make_shards"):
            _make_shards_command(options)
        elif command == "list_models":
            from lightly_train import list_models

            print("\n".join(list_models()))
        elif command == "list_methods":
            from lightly_train import list_methods

            print("\n".join(list_methods()))
        else:
            print(
                f"Unknown command '{command}'.{closest_match_hint(command, COMMANDS)}\n\n{USAGE}",
                file=sys.stderr,
            )
            return 2
    except TrainingInterrupted as e:  # the run logged how to resume
        return 128 + e.signum
    except LossNotFiniteError as e:
        print(f"lightly-train: error: {e}", file=sys.stderr)
        return 1
    except (LightlyTrainError, ImportError) as e:
        print(f"lightly-train: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a full disk: train.log has the details
        # A full disk (lt_train's DiskFullError) is one line that names it; others keep
        # their type.
        text = str(e) if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}"
        print(f"lightly-train: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
        print("lightly-train: stopped.", file=sys.stderr)
        return 130
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lightly-train")
    except PackageNotFoundError:  # a source tree without its metadata
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
