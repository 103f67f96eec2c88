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
import hashlib
import json
import os
import re
import shutil
import tempfile
import types
import typing
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from src.cli import UserError

if TYPE_CHECKING:
    from src.domain import Domain


class DataError(UserError, ValueError):
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


# Query styles of the independent evaluation sets (people's own typing, not our templates).
EVAL_QUERY_STYLES = {
    "typo": "오타",
    "spacing": "띄어쓰기 변형",
    "mixed": "한영 혼용",
    "long_question": "긴 질문",
    "part_number": "부품 번호·규격",
    "symptom": "이름 없이 현상·목적",
    "short": "짧은 키워드",
}
EVAL_SPLITS = ("dev", "test")  # dev: choose recipes and defaults on it; test: report only
CONCEPT_ID = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class GlossaryEntry:
    """One concept of the glossary (``data/glossary_ko.jsonl``).

    ``definitions`` maps a register (the domain's ``registers``) to an independently worded definition, the primary
    one first; a user glossary may give a single ``definition`` string instead (read as its textbook
    wording). ``reading`` is the Korean pronunciation of an acronym read as a word (MOSFET -> 모스펫); it
    decides the Korean particle after the acronym. ``descriptions`` are noun phrases that identify the
    concept without naming it; ``confusables`` are ids of sibling concepts that are easy to mix up.
    """

    id: str
    term: str
    category: str
    definitions: dict[str, str] = dataclasses.field(default_factory=dict)
    english: str | None = None
    acronym: str | None = None
    reading: str | None = None
    aliases: list[str] = dataclasses.field(default_factory=list)
    descriptions: list[str] = dataclasses.field(default_factory=list)
    confusables: list[str] = dataclasses.field(default_factory=list)

    @property
    def definition(self) -> str | None:
        """The primary definition (the first wording), or None for a concept without one."""
        return next(iter(self.definitions.values()), None)

    @property
    def names(self) -> list[str]:
        """Every name of the concept: term, English name, acronym and aliases."""
        return [n for n in (self.term, self.english, self.acronym, *self.aliases) if n]


@dataclasses.dataclass(frozen=True)
class GeneralPair:
    """A general-language (not electrical) query and the passage that answers it
    (``data/general_ko_pairs.jsonl``); mixed into training to keep general Korean understanding."""

    topic: str
    query: str
    positive: str


@dataclasses.dataclass(frozen=True)
class AcronymEntry:
    """One line of the seed-style acronyms file (``data/acronyms_ko.jsonl``)."""

    acronym: str
    full: str
    definition: str


@dataclasses.dataclass(frozen=True)
class EvalQuery:
    """A query of an independent evaluation set, as people type it (``EVAL_QUERY_STYLES``)."""

    style: str
    text: str


@dataclasses.dataclass(frozen=True)
class EvalConcept:
    """One concept of an independent evaluation set (``data/eval/*_concepts.jsonl``, ``seen_wording.jsonl``).

    ``passages`` maps a register to a passage about the concept written outside this project's templates
    and glossary; every query's relevant passages are its concept's. ``split`` is fixed once: ``dev``
    concepts are for choosing recipes, ``test`` concepts only for reporting.
    """

    concept_id: str
    term: str
    category: str
    split: str
    passages: dict[str, str]
    queries: list[EvalQuery]
    english: str | None = None
    acronym: str | None = None
    aliases: list[str] = dataclasses.field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [n for n in (self.term, self.english, self.acronym, *self.aliases) if n]


@dataclasses.dataclass(frozen=True)
class TermPair:
    """A Korean term and its English equivalent (``data/eval/term_pairs.jsonl``); ``in_glossary`` says
    whether the glossary names the concept, ``split`` is the fixed dev/test part."""

    ko: str
    en: str
    category: str
    split: str
    in_glossary: bool


R = TypeVar("R")

SYNTH_COMMAND = "python -m src.synth_data"  # the stage that writes the Triplet and Passage files


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a JSON object"
    if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return "a list of JSON objects"
    return str(tp).replace("typing.", "").replace("src.data.", "") if typing.get_origin(tp) else tp.__name__


def _matches(value: Any, tp: Any) -> bool:
    """True if a decoded JSON value fits the annotated field type (str, int, float, bool, list[X],
    dict[str, X], X | None, or a nested record type, checked as an object here and parsed later)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item_tp) for v in value)
    if origin is dict:
        _, value_tp = typing.get_args(tp)
        return isinstance(value, dict) and all(_matches(v, value_tp) for v in value.values())
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _empty_text(value: Any) -> bool:
    """True for a blank string, or a list/dict holding one (nested records are checked on their own)."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, dict):
        return any(isinstance(v, str) and not v.strip() for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, str) and not v.strip() for v in value)
    return False


def parse_record(obj: Any, record_type: type[R], path: str | os.PathLike, line: int, prefix: str = "") -> R:
    """Validate one decoded JSON value against a dataclass record type; unknown keys are ignored.

    Fields may hold nested record types (or lists of them); ``prefix`` names the enclosing field in
    errors, e.g. ``queries[2].text``."""
    if not isinstance(obj, dict):
        where = f"field '{prefix.rstrip('.')}' must be a JSON object" if prefix else "expected a JSON object"
        raise DataError(path, f"{where}, got {type(obj).__name__}", line)
    hints = typing.get_type_hints(record_type)
    values = {}
    for field in dataclasses.fields(record_type):
        tp, name = hints[field.name], prefix + field.name
        if field.name not in obj:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise DataError(path, f"missing field '{name}'", line)
        value = obj[field.name]
        if not _matches(value, tp):
            raise DataError(
                path,
                f"field '{name}' must be {_type_name(tp)}, got {type(value).__name__} ({value!r:.40})",
                line,
            )
        if _empty_text(value):
            raise DataError(
                path,
                f"field '{name}' is empty"
                if isinstance(value, str)
                else f"field '{name}' holds an empty text",
                line,
            )
        if dataclasses.is_dataclass(tp):
            value = parse_record(value, tp, path, line, f"{name}.")
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(item := typing.get_args(tp)[0]):
            value = [parse_record(v, item, path, line, f"{name}[{i}].") for i, v in enumerate(value)]
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


def read_numbered(
    path: str | os.PathLike, record_type: type[R], made_by: str | None = None
) -> list[tuple[int, R]]:
    """(line number, record) for every record of a JSONL file; an empty file is an error. made_by: see iter_json_lines."""
    numbered = [(n, parse_record(obj, record_type, path, n)) for n, obj in iter_json_lines(path, made_by)]
    if not numbered:
        raise DataError(path, "file is empty (no JSON lines)")
    return numbered


def read_jsonl(path: str | os.PathLike, record_type: type[R], made_by: str | None = None) -> list[R]:
    """Read and validate every record of a JSONL file; an empty file is an error. made_by: see iter_json_lines."""
    return [record for _, record in read_numbered(path, record_type, made_by)]


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


DEFINITION_CHARS = (20, 800)  # sane length of one definition, in characters


def normalize_name(name: str) -> str:
    """Key for matching names across files: NFKC, lower case, without spaces and hyphens."""
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", name).lower())


def name_keys(concept: GlossaryEntry | EvalConcept) -> list[str]:
    """Distinct matching keys of a concept's names: normalized term, English name and aliases; the acronym
    keeps its case (SoC, system on a chip, and SOC, state of charge, are different acronyms)."""
    keys = [normalize_name(n) for n in (concept.term, concept.english, *concept.aliases) if n]
    if concept.acronym:
        keys.append("acronym:" + re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", concept.acronym)))
    return list(dict.fromkeys(keys))


def _glossary_object(obj: Any, path: str | os.PathLike, line: int) -> Any:
    """Accept a user glossary's single ``definition`` string as ``definitions: {"textbook": ...}``."""
    if not isinstance(obj, dict) or "definition" not in obj:
        return obj
    if "definitions" in obj:
        raise DataError(path, "give either 'definition' or 'definitions', not both", line)
    if not isinstance(obj["definition"], str) or not obj["definition"].strip():
        raise DataError(path, "field 'definition' must be a non-empty str", line)
    return {**obj, "definitions": {"textbook": obj["definition"]}}


def _domain(domain: Domain | None) -> Domain:
    from src.domain import default_domain  # src.domain reads its file with this module's errors

    return domain or default_domain()


def load_glossary(path: str | os.PathLike, domain: Domain | None = None) -> list[GlossaryEntry]:
    """Read the glossary and check it as a whole: id shape, the domain's categories and registers (default:
    data/templates_ko.yaml), definition lengths, unique ids, every name (term, English, acronym, alias)
    owned by one concept, confusables that name existing other concepts. Errors name the file and line."""
    domain = _domain(domain)
    numbered = [
        (n, parse_record(_glossary_object(obj, path, n), GlossaryEntry, path, n))
        for n, obj in iter_json_lines(path)
    ]
    if not numbered:
        raise DataError(path, "file is empty (no JSON lines)")
    first_line: dict[str, int] = {}
    owner: dict[str, str] = {}  # normalized name -> concept id
    low, high = DEFINITION_CHARS
    for n, entry in numbered:
        if not CONCEPT_ID.match(entry.id):
            raise DataError(
                path, f"field 'id' must be lowercase ASCII letters, digits or '_': {entry.id!r}", n
            )
        if entry.id in first_line:
            raise DataError(
                path, f"duplicate concept id '{entry.id}' (first on line {first_line[entry.id]})", n
            )
        if entry.category not in domain.categories:
            raise DataError(path, f"field 'category': unknown category {entry.category!r} (not in "
                                  f"{domain.path.name})", n)  # fmt: skip
        for register, text in entry.definitions.items():
            if register not in domain.registers:
                raise DataError(path, f"field 'definitions': unknown register {register!r} (one of "
                                      f"{', '.join(domain.registers)})", n)  # fmt: skip
            if not low <= len(text) <= high:
                raise DataError(
                    path, f"field 'definitions.{register}': {len(text)} characters, expected {low}-{high}", n
                )
        for name in name_keys(entry):
            if owner.setdefault(name, entry.id) != entry.id:
                raise DataError(path, f"name {name!r} of '{entry.id}' also belongs to '{owner[name]}'", n)
        first_line[entry.id] = n
    for n, entry in numbered:
        for other in entry.confusables:
            if other not in first_line or other == entry.id:
                raise DataError(
                    path, f"field 'confusables': '{other}' is not another concept of the glossary", n
                )
    return [entry for _, entry in numbered]


def load_eval_concepts(path: str | os.PathLike) -> list[EvalConcept]:
    """Read an independent evaluation set of concepts: unique ids and names, known categories, registers,
    query styles and splits, at least one query and two passages per concept. Categories and registers are
    the default domain's: the independent sets evaluate the electrical and electronics domain."""
    domain = _domain(None)
    numbered = read_numbered(path, EvalConcept)
    seen: dict[str, int] = {}
    owner: dict[str, str] = {}
    for n, c in numbered:
        if c.concept_id in seen:
            raise DataError(
                path, f"duplicate concept_id '{c.concept_id}' (first on line {seen[c.concept_id]})", n
            )
        seen[c.concept_id] = n
        if c.category not in domain.categories:
            raise DataError(path, f"field 'category': unknown category {c.category!r}", n)
        if c.split not in EVAL_SPLITS:
            raise DataError(
                path, f"field 'split' must be one of {', '.join(EVAL_SPLITS)}, got {c.split!r}", n
            )
        unknown = sorted(set(c.passages) - set(domain.registers))
        if unknown or len(c.passages) < 2:
            raise DataError(path, f"field 'passages': needs 2+ registers of {', '.join(domain.registers)}", n)
        styles = sorted({q.style for q in c.queries} - set(EVAL_QUERY_STYLES))
        if styles or not c.queries:
            raise DataError(
                path, f"field 'queries': needs 1+ queries with a style of {', '.join(EVAL_QUERY_STYLES)}", n
            )
        for name in name_keys(c):
            if owner.setdefault(name, c.concept_id) != c.concept_id:
                raise DataError(path, f"name {name!r} of '{c.concept_id}' also belongs to '{owner[name]}'", n)
    return [c for _, c in numbered]


def load_term_pairs(path: str | os.PathLike) -> list[TermPair]:
    """Read the Korean-English term pairs: the default domain's categories, known splits, every Korean and
    English term once."""
    categories = _domain(None).categories
    numbered = read_numbered(path, TermPair)
    first: dict[str, int] = {}
    for n, pair in numbered:
        if pair.category not in categories:
            raise DataError(path, f"field 'category': unknown category {pair.category!r}", n)
        if pair.split not in EVAL_SPLITS:
            raise DataError(
                path, f"field 'split' must be one of {', '.join(EVAL_SPLITS)}, got {pair.split!r}", n
            )
        for side, term in (("ko", pair.ko), ("en", pair.en)):
            key = f"{side}:{normalize_name(term)}"
            if first.setdefault(key, n) != n:
                raise DataError(path, f"field '{side}': {term!r} already on line {first[key]}", n)
    return [pair for _, pair in numbered]


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
    if is_dir and target.exists() and not target.is_dir():
        raise DataError(target, "exists and is not a folder; choose another output folder")
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


def file_digest(path: str | os.PathLike, skip: Callable[[Path], bool] | None = None) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, in sorted order), leaving
    out the files whose relative path ``skip`` accepts."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir() and skip is not None and skip(f.relative_to(path)):
            continue
        h.update(str(f.relative_to(path)).encode() if path.is_dir() else b"")
        with f.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Atomically write records as JSONL; returns the number of lines written."""
    return write_jsonl_files(Path(path).parent, {Path(path).name: records})[Path(path).name]


def write_jsonl_files(folder: str | os.PathLike, files: dict[str, Iterable[Any]]) -> dict[str, int]:
    """Write several JSONL files into ``folder`` together or not at all: every file is first written
    completely beside its target, and only then do they all replace their targets (so a failure never
    leaves a mix of new and old files). Returns the lines written per file name."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(folder, "the output folder is a file")
    for name in files:
        if (folder / name).is_dir():
            raise DataError(folder / name, "is a folder; cannot replace it with a file")
    counts = {}
    with contextlib.ExitStack() as stack:
        for name, records in files.items():
            tmp = stack.enter_context(atomic_path(folder / name))
            with tmp.open("w", encoding="utf-8", newline="\n") as f:
                counts[name] = sum(f.write(to_json_line(record)) > 0 for record in records)
    return counts
