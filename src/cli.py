"""Command-line conventions shared by every stage: one error type, one way to exit, one flag vocabulary.

Every stage's ``main`` is wrapped by :func:`entry_point`:

- a :class:`UserError` (bad input file, missing model, flags that cannot work together) or an ``OSError``
  (a full disk, an unwritable folder) prints ``error: <one line>`` to stderr and exits 2;
- Ctrl-C prints ``interrupted`` and exits 130, without a traceback;
- anything else is a bug in the toolkit and keeps its full traceback.

A stage may return 1 itself for a documented "ran fine, but the answer is no" (the quality gate, a failed
smoke or parity check).

:class:`ArgumentParser` reports a bad flag the same way (one line, exit 2), accepts every long flag with
``-`` or ``_`` between its words (``--output-dir`` = ``--output_dir``) and takes the older spellings of
the shared vocabulary as aliases. The vocabulary, written down in the README ("명령행 규칙"):

    --model        the model a stage uses: evaluates, searches, maps or serves
    --base_model   its base: what src.train fine-tunes, and what the other stages compare with
    --output_dir   the folder (or file) a stage writes
    --overwrite    replace an existing output that is not the stage's own earlier output
    --seed         every random choice of the stage
    --batch_size   texts or rows per forward pass

The argument types below check ranges at parse time (never NaN or infinity); the input types
(``INPUT_TYPES``) mark the flags that name files, folders or models a stage reads, so the pipeline can hash
exactly those (:func:`inputs_of`).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path

ALIASES = {  # older spelling -> the shared vocabulary
    "--model_path": "--model",
    "--model_name": "--base_model",
    "--baseline_model": "--base_model",
    "--compare": "--base_model",
    "--report_dir": "--output_dir",
    "--work_dir": "--output_dir",
    "--overwrite_output_dir": "--overwrite",
}
EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


class UserError(Exception):
    """A problem the user can fix (input, flags, model, disk); reported as one line with exit code 2."""


class UsageError(UserError):
    """Flags or values that cannot work together."""


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def entry_point(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a stage's ``main(argv) -> exit code`` with the toolkit's error reporting (module docstring)."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            return EXIT_USER_ERROR
        except OSError as e:  # the disk or the file system said no: not a bug of ours
            where = f"{e.filename}: " if e.filename else ""
            print(f"error: {where}{one_line(e.strerror or e)}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED

    return wrapped


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolkit's conventions: ``-``/``_`` spellings, vocabulary aliases, and usage errors
    raised as :class:`UsageError` (so :func:`entry_point` prints them as one line)."""

    def __init__(self, description: str, **kwargs):
        super().__init__(description=description.strip().split("\n\n")[0], **kwargs)

    def _canonical(self, token: str) -> str:
        if not token.startswith("--"):
            return token
        flag, eq, value = token.partition("=")
        known = self._option_string_actions
        for candidate in (flag, flag.replace("-", "_").replace("__", "--", 1)):
            candidate = ALIASES.get(candidate, candidate) if candidate not in known else candidate
            if candidate in known:
                return candidate + eq + value
        return token

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        cut = args.index("--") if "--" in args else len(args)
        args = [self._canonical(a) for a in args[:cut]] + args[cut:]
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


# ----------------------------------------------------------------------------- argument types


def number(cast: type = float, low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False) -> Callable[[str], float]:  # fmt: skip
    """An argparse type: a finite ``cast`` (int or float) within [low, high]; ``open_low``/``open_high``
    exclude that end. The error names the range: "must be a finite number in (0, 1], got 0"."""
    left, right = "(" if open_low else "[", ")" if open_high else "]"
    span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if cast is int else 'a number'}, "
                                             f"got {text!r}") from None  # fmt: skip
        if not math.isfinite(value) or (
            low is not None and (value < low or (open_low and value == low))
        ) or (high is not None and (value > high or (open_high and value == high))):  # fmt: skip
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text}")
        return value

    return parse


positive_int = number(int, 1)
non_negative_int = number(int, 0)
positive_float = number(float, 0, open_low=True)
probability = number(float, 0, 1)


def input_file(text: str) -> Path:
    """An existing regular file."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{text}: {'not a regular file' if path.exists() else 'file not found'}"
        )
    return path


def optional_input_file(text: str) -> Path | None:
    """An existing file, or '' to leave the input out (None)."""
    return input_file(text) if text else None


def input_dir(text: str) -> Path:
    """An existing folder."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {'not a folder' if path.exists() else 'folder not found'}")
    return path


def optional_input_dir(text: str) -> Path | None:
    return input_dir(text) if text else None


def is_local_path(name: str) -> bool:
    """True when a model name means a folder here rather than a Hub id ("org/name"): it exists, starts with
    '.', '/' or '~', has more than one '/', or its parent folder exists here (outputs/bge-m3-kr)."""
    path = Path(name).expanduser()
    return (
        path.exists()
        or name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or (path.parent != Path(".") and path.parent.is_dir())
    )


def model_name(text: str) -> str:
    """A model name: a short name or Hub id (checked when the model loads) or a path, which must exist."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty model name")
    if is_local_path(text) and not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"{text}: model folder not found")
    return text


def add_backend(parser: argparse.ArgumentParser, default: str | None = "torch", note: str = "") -> None:
    """``--backend``: how ``--model`` runs: PyTorch, or an ONNX variant written by ``src.export``."""
    from src.onnx_encoder import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default=default,
                        help="run --model with PyTorch, or its ONNX fp32/int8 variant (python -m src.export)" + note)  # fmt: skip


def output_path(text: str) -> Path:
    """Where a stage writes: must not be empty; whether it can be written is checked when writing."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty output path")
    return Path(text)


INPUT_TYPES = (input_file, optional_input_file, input_dir, optional_input_dir, model_name)


def inputs_of(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[tuple[str, Path | str, bool]]:
    """(destination, value, names a model) for every parsed value whose flag reads something (a file,
    folder or model), in the parser's order; a flag left out ('' or None) is not listed."""
    found = []
    for action in parser._actions:  # argparse keeps no public list of actions
        value = getattr(args, action.dest, None)
        if action.type in INPUT_TYPES and value not in (None, [], ""):
            for v in value if isinstance(value, list) else [value]:
                found.append((action.dest, v, action.type is model_name))
    return found
