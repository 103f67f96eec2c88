"""Record schema and JSONL input/output shared by every stage.

Every file the stages pass to each other is JSON Lines: one JSON object per line, UTF-8.
This module owns the record types and is the only place that parses or writes them, so a
malformed line is reported the same way everywhere: file, line number and field.

Writes are atomic: the data goes to a temporary file next to the target, which is renamed over
the target only once everything was written. A failure leaves the previous file (or nothing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar


class DataError(ValueError):
    """Invalid input data; the message names the file, and the line and field where known."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


@dataclasses.dataclass(frozen=True)
class Triplet:
    """One training or test example: a query, a passage that answers it and a hard negative."""

    query: str
    positive: str
    negative: str
    concept_id: str
    negative_concept_id: str
    style: str
    category: str


@dataclasses.dataclass(frozen=True)
class Passage:
    """One document of the retrieval corpus; several passages may describe the same concept."""

    passage_id: str
    concept_id: str
    category: str
    text: str


@dataclasses.dataclass(frozen=True)
class FaqEntry:
    """One FAQ item for FAQ matching: a question users ask and its answer."""

    question: str
    answer: str


# Glossary categories: key -> Korean label used in reports. "general" holds user additions
# that come from the plain terms / acronyms files without a category.
CATEGORIES = {
    "passive": "수동 소자",
    "semiconductor": "반도체·소자",
    "analog": "아날로그 회로",
    "digital_embedded": "디지털·임베디드",
    "power_electronics": "전력전자",
    "power_systems": "전력계통·전기기기",
    "signal_processing": "신호처리·데이터 변환",
    "rf_comm": "RF·통신",
    "sensors_measurement": "센서·계측",
    "pcb_manufacturing": "PCB·제조",
    "protection_emc_safety": "보호·EMC·안전",
    "general": "일반",
}
CONCEPT_ID = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class GlossaryEntry:
    """One concept of the glossary (``data/glossary_ko.jsonl``).

    ``reading`` is the Korean pronunciation of an acronym read as a word (MOSFET -> 모스펫); it decides
    the Korean particle after the acronym. ``descriptions`` are noun phrases that identify the concept
    without naming it; ``confusables`` are ids of sibling concepts that are easy to mix up.
    """

    id: str
    term: str
    category: str
    definition: str | None = None
    english: str | None = None
    acronym: str | None = None
    reading: str | None = None
    aliases: list[str] = dataclasses.field(default_factory=list)
    descriptions: list[str] = dataclasses.field(default_factory=list)
    confusables: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class AcronymEntry:
    """One line of the seed-style acronyms file (``data/acronyms_ko.jsonl``)."""

    acronym: str
    full: str
    definition: str


R = TypeVar("R")

SYNTH_COMMAND = "python -m src.synth_data"  # the stage that writes the Triplet and Passage files


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "") if typing.get_origin(tp) else tp.__name__


def _matches(value: Any, tp: Any) -> bool:
    """True if a decoded JSON value fits the annotated field type (str, int, float, bool, list[X], X | None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item_tp) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def parse_record(obj: Any, record_type: type[R], path: str | os.PathLike, line: int) -> R:
    """Validate one decoded JSON value against a dataclass record type; unknown keys are ignored."""
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line)
    hints = typing.get_type_hints(record_type)
    values = {}
    for field in dataclasses.fields(record_type):
        tp = hints[field.name]
        if field.name not in obj:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise DataError(path, f"missing field '{field.name}'", line)
        value = obj[field.name]
        if not _matches(value, tp):
            raise DataError(
                path,
                f"field '{field.name}' must be {_type_name(tp)}, got {type(value).__name__} ({value!r:.40})",
                line,
            )
        if tp is str and not value.strip():
            raise DataError(path, f"field '{field.name}' is empty", line)
        values[field.name] = value
    return record_type(**values)


def iter_json_lines(path: str | os.PathLike, made_by: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded JSON value) for every non-blank line of a UTF-8 JSONL file.

    made_by: the command that writes the file, named in the error when the file is missing.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"file not found (`{made_by}` writes it)" if made_by else "file not found")
    if not path.is_file():
        raise DataError(path, "not a regular file")
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, f"not valid UTF-8 (byte {e.start} of the line)", number) from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})", number) from None


def read_jsonl(path: str | os.PathLike, record_type: type[R], made_by: str | None = None) -> list[R]:
    """Read and validate every record of a JSONL file; an empty file is an error. made_by: see iter_json_lines."""
    records = [parse_record(obj, record_type, path, n) for n, obj in iter_json_lines(path, made_by)]
    if not records:
        raise DataError(path, "file is empty (no JSON lines)")
    return records


def read_text_lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, stripped text) of every non-blank line of a UTF-8 text file not starting with '#'."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a regular file")
    lines = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise DataError(path, f"not valid UTF-8 (byte {e.start} of the line)", number) from None
        if text and not text.startswith("#"):
            lines.append((number, text))
    if not lines:
        raise DataError(path, "file is empty (no lines)")
    return lines


def load_glossary(path: str | os.PathLike) -> list[GlossaryEntry]:
    """Read the glossary and check it as a whole: id shape, known categories, unique ids and acronyms,
    confusables that name existing other concepts. Errors name the file and line."""
    numbered = [(n, parse_record(obj, GlossaryEntry, path, n)) for n, obj in iter_json_lines(path)]
    if not numbered:
        raise DataError(path, "file is empty (no JSON lines)")
    first_line: dict[str, int] = {}
    acronyms: dict[str, str] = {}
    for n, entry in numbered:
        if not CONCEPT_ID.match(entry.id):
            raise DataError(
                path, f"field 'id' must be lowercase ASCII letters, digits or '_': {entry.id!r}", n
            )
        if entry.id in first_line:
            raise DataError(
                path, f"duplicate concept id '{entry.id}' (first on line {first_line[entry.id]})", n
            )
        if entry.category not in CATEGORIES:
            raise DataError(path, f"field 'category': unknown category {entry.category!r}", n)
        if entry.acronym:
            if entry.acronym in acronyms:
                raise DataError(
                    path, f"acronym '{entry.acronym}' also belongs to '{acronyms[entry.acronym]}'", n
                )
            acronyms[entry.acronym] = entry.id
        first_line[entry.id] = n
    for n, entry in numbered:
        for other in entry.confusables:
            if other not in first_line or other == entry.id:
                raise DataError(
                    path, f"field 'confusables': '{other}' is not another concept of the glossary", n
                )
    return [entry for _, entry in numbered]


def to_json_line(record: Any) -> str:
    """Serialize a dataclass record (or a plain dict) as one JSON line, field order preserved."""
    obj = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else record
    return json.dumps(obj, ensure_ascii=False) + "\n"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``, on error it is removed.

    For a directory (``is_dir=True``) an existing ``target`` is replaced as a whole.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o777 & ~umask)
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        if is_dir:
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old)
            else:
                tmp.rename(target)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Atomically write records as JSONL; returns the number of lines written."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(to_json_line(record))
            count += 1
    return count
