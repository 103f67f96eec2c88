"""The domain as data: categories, registers, query and passage templates, and particle readings.

Everything domain-specific that src.synth_data writes comes from one YAML file, ``data/templates_ko.yaml``
for Korean electrical and electronics engineering; another domain (medical devices, finance) is another
file plus its glossary, with no code change (``data/examples/medical_devices/``). The file is checked as
a whole when it is read, and every error names the file and line:

    name             the domain's name, shown in summaries
    categories       key (lowercase ASCII) -> Korean label; must include "general" (seed-file terms)
    registers        key -> label of the registers a definition may be written in; must include "textbook"
    particles        consonant_final: Latin letter or digit -> final consonant of its Korean reading
    queries          style -> templates; each template fills its style's one slot (QUERY_SLOTS)
    passages         name -> template (PASSAGE_SLOTS)

A slot is ``{X}`` or ``{X:은/는}``: the value, then a particle chosen by the value's final sound, written
consonant form first.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import yaml

from src.data import CONCEPT_ID, DataError

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "data" / "templates_ko.yaml"
# query style -> the slot its templates fill: A acronym, T Korean term, E English name, S alias,
# D description, X acronym or English name (code-switching), K any name (keyword)
QUERY_SLOTS = {
    "acronym_question": "A",
    "full_name_question": "T",
    "english_question": "E",
    "alias_variant": "S",
    "definition_to_term": "D",
    "code_switching": "X",
    "keyword": "K",
}
# passage template -> the slots it may use: T term, E English name, A acronym, L category label,
# F first sentence of the definition
PASSAGE_SLOTS = {"no_definition": "T", "acronym": "TEAF", "category": "TLF"}
SLOT = re.compile(r"\{([A-Z])(?::([^{}]*))?\}")
PARTICLE = re.compile(r"^[가-힣]+/[가-힣]+$")
TOP_LEVEL = ("name", "categories", "registers", "particles", "queries", "passages")


@dataclasses.dataclass(frozen=True)
class Domain:
    """A checked domain file (see the module docstring)."""

    name: str
    categories: dict[str, str]
    registers: dict[str, str]
    consonant_final: dict[str, str]
    queries: dict[str, list[str]]
    passages: dict[str, str]
    path: Path


class _Reader:
    """Turns YAML nodes into Python values, raising DataError with the node's line."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, node: yaml.Node, message: str):
        raise DataError(self.path, message, node.start_mark.line + 1)

    def mapping(self, node: yaml.Node, what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode) or not node.value:
            self.fail(node, f"'{what}' must be a non-empty mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = self.text(key, f"a key of '{what}'")
            if name in out:
                self.fail(key, f"'{what}': duplicate key {name!r}")
            out[name] = value
        return out

    def text(self, node: yaml.Node, what: str) -> str:
        if (
            not isinstance(node, yaml.ScalarNode)
            or node.tag != "tag:yaml.org,2002:str"
            or not node.value.strip()
        ):
            self.fail(node, f"{what} must be a non-empty text")
        return node.value

    def labels(self, node: yaml.Node, what: str) -> dict[str, str]:
        out = {}
        for key, value in self.mapping(node, what).items():
            if not CONCEPT_ID.match(key):
                self.fail(value, f"'{what}': key {key!r} must be lowercase ASCII letters, digits or '_'")
            out[key] = self.text(value, f"'{what}.{key}'")
        return out

    def template(self, node: yaml.Node, what: str, allowed: str, exactly_one: bool) -> str:
        text = self.text(node, what)
        slots = SLOT.findall(text)
        if exactly_one and len(slots) != 1:
            self.fail(node, f"{what}: {text!r} must have exactly one slot {{{allowed}}}")
        for letter, particle in slots:
            if letter not in allowed:
                self.fail(node, f"{what}: {text!r} uses slot {{{letter}}}; allowed: {', '.join(allowed)}")
            if particle and not PARTICLE.match(particle):
                self.fail(node, f"{what}: particle {particle!r} must be two Hangul forms, consonant form first "
                                "(e.g. 은/는)")  # fmt: skip
        if re.sub(SLOT, "", text).count("{") or re.sub(SLOT, "", text).count("}"):
            self.fail(node, f"{what}: {text!r} has an unmatched brace or a malformed slot")
        return text


def load_domain(path: str | Path) -> Domain:
    """Read and check a domain file; raises DataError naming the file and line of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "not a regular file" if path.exists() else "file not found")
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(path, f"not valid UTF-8 (byte {e.start})") from None
    except yaml.YAMLError as e:  # a syntax error (with its line) or an unreadable character
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise DataError(path, f"malformed YAML: {problem}", mark.line + 1 if mark else None) from None
    if root is None:
        raise DataError(path, "file is empty")
    r = _Reader(path)
    top = r.mapping(root, "the file")
    for key, node in top.items():
        if key not in TOP_LEVEL:
            r.fail(node, f"unknown section {key!r} (expected {', '.join(TOP_LEVEL)})")
    missing = [k for k in TOP_LEVEL if k not in top]
    if missing:
        raise DataError(path, f"missing section(s): {', '.join(missing)}")
    categories = r.labels(top["categories"], "categories")
    if "general" not in categories:
        r.fail(top["categories"], "'categories' must include 'general' (seed-file terms without a category)")
    registers = r.labels(top["registers"], "registers")
    if "textbook" not in registers:
        r.fail(top["registers"], "'registers' must include 'textbook' (a glossary's single 'definition')")
    particles = r.mapping(top["particles"], "particles")
    if set(particles) != {"consonant_final"}:
        r.fail(top["particles"], "'particles' holds one key, 'consonant_final'")
    finals = {}
    for char, node in r.mapping(particles["consonant_final"], "particles.consonant_final").items():
        final = r.text(node, f"'particles.consonant_final.{char}'")
        if len(char) != 1 or not char.isascii() or not char.isalnum() or not re.fullmatch("[ㄱ-ㅎ]", final):
            r.fail(node, f"'particles.consonant_final': {char!r}: {final!r} must map one Latin letter or digit "
                         "to one final consonant (e.g. M: ㅁ)")  # fmt: skip
        finals[char.upper()] = final
    query_nodes = r.mapping(top["queries"], "queries")
    queries = {}
    for style, node in query_nodes.items():
        if style not in QUERY_SLOTS:
            r.fail(node, f"'queries': unknown style {style!r} (one of {', '.join(QUERY_SLOTS)})")
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            r.fail(node, f"'queries.{style}' must be a non-empty list of templates")
        queries[style] = [r.template(t, f"'queries.{style}'", QUERY_SLOTS[style], True) for t in node.value]
    if set(queries) != set(QUERY_SLOTS):
        r.fail(
            top["queries"],
            f"'queries' lacks style(s): {', '.join(s for s in QUERY_SLOTS if s not in queries)}",
        )
    passages = {}
    for name, node in r.mapping(top["passages"], "passages").items():
        if name not in PASSAGE_SLOTS:
            r.fail(node, f"'passages': unknown template {name!r} (one of {', '.join(PASSAGE_SLOTS)})")
        passages[name] = r.template(node, f"'passages.{name}'", PASSAGE_SLOTS[name], False)
    if set(passages) != set(PASSAGE_SLOTS):
        r.fail(
            top["passages"], f"'passages' lacks: {', '.join(p for p in PASSAGE_SLOTS if p not in passages)}"
        )
    name = r.text(top["name"], "'name'")
    return Domain(name, categories, registers, finals, queries, passages, path)


@functools.cache
def default_domain() -> Domain:
    """The default domain file, read once per process."""
    return load_domain(DEFAULT_FILE)
