"""The shipped glossary: schema, coverage, consistency with the seed-style files, and its validator."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from src.data import (
    AcronymEntry,
    DataError,
    load_glossary,
    normalize_name,
    read_jsonl,
    read_text_lines,
)
from src.domain import default_domain

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def glossary():
    return load_glossary(DATA / "glossary_ko.jsonl")


def test_coverage_per_category(glossary):
    assert len(glossary) >= 1500 and sum(1 for c in glossary if c.acronym) >= 400
    per_category = Counter(c.category for c in glossary)
    assert set(per_category) == set(default_domain().categories) - {"general"}
    assert min(per_category.values()) >= 60, per_category


def test_entries_are_complete_and_well_formed(glossary):
    registers = Counter()
    for c in glossary:
        assert c.english and c.aliases, c.id
        assert len(c.definitions) >= 2 and next(iter(c.definitions)) == "textbook", c.id
        sentences = re.findall(r"다\.(?:\s|$)", c.definition)
        assert 1 <= len(sentences) <= 3 and c.definition.endswith("다."), c.id
        assert all(60 <= len(text) <= 350 for text in c.definitions.values()), c.id
        assert len(set(map(normalize_name, c.definitions.values()))) == len(c.definitions), c.id  # not copies
        registers.update(list(c.definitions)[1:])
        assert len(c.descriptions) == 2, c.id
        assert len(set(c.aliases)) == len(c.aliases) and c.term not in c.aliases, c.id
    assert (
        set(registers) == set(default_domain().registers) - {"textbook"} and min(registers.values()) >= 200
    ), registers


def test_descriptions_do_not_name_the_concept(glossary):
    for c in glossary:
        names = [normalize_name(n) for n in (c.term, c.english, c.acronym, *c.aliases) if n]
        for d in c.descriptions:
            assert not any(n in normalize_name(d) for n in names), (c.id, d)


def test_no_name_belongs_to_two_concepts(glossary):
    owner: dict[str, str] = {}
    for c in glossary:
        for name in {normalize_name(n) for n in (c.term, c.english, *c.aliases)}:
            assert owner.setdefault(name, c.id) == c.id, f"{name!r}: {owner[name]} and {c.id}"


def test_confusables_are_symmetric(glossary):
    by_id = {c.id: c for c in glossary}
    for c in glossary:
        for other in c.confusables:
            assert c.id in by_id[other].confusables, (c.id, other)


def test_domain_examples_from_the_product_brief(glossary):
    by_id = {c.id: c for c in glossary}
    assert {"콘덴서", "축전기"} <= set(by_id["capacitor"].aliases)
    assert {"벅컨버터", "강압 컨버터"} <= set(by_id["buck_converter"].aliases)
    assert by_id["pwm"].acronym == "PWM" and by_id["pwm"].term == "펄스 폭 변조"
    for group in [
        ("adc", "dac"),
        ("buck_converter", "boost_converter"),
        ("ntc_thermistor", "ptc_thermistor"),
        ("active_power", "reactive_power", "apparent_power"),
        ("bjt", "mosfet", "igbt"),
        ("i2c", "spi", "uart"),
    ]:
        for a in group:
            assert set(group) - {a} <= set(by_id[a].confusables), a


def test_seed_style_files_agree_with_the_glossary(glossary):
    terms = [t for _, t in read_text_lines(DATA / "terms_electronics_ko.txt")]
    acronyms = read_jsonl(DATA / "acronyms_ko.jsonl", AcronymEntry)
    defined = {c.term: c for c in glossary if c.definition}
    assert [t for t in terms if t not in defined] == []  # every listed term has a definition
    by_acronym = {c.acronym: c for c in glossary if c.acronym}
    assert len(acronyms) == len(by_acronym) and len({a.acronym for a in acronyms}) == len(acronyms)
    for a in acronyms:
        assert by_acronym[a.acronym].english == a.full and by_acronym[a.acronym].definition == a.definition


GOOD = {"id": "pwm", "term": "펄스 폭 변조", "category": "power_electronics",
        "definitions": {"textbook": "듀티비를 바꾸어 평균 전압이나 전력을 조절하는 변조 방식이다."}}  # fmt: skip


@pytest.mark.parametrize(
    "lines, message",
    [
        ([GOOD, {**GOOD, "term": "x"}], r":2: duplicate concept id 'pwm' \(first on line 1\)"),
        (
            [GOOD, {**GOOD, "id": "p2", "aliases": ["펄스폭 변조"]}],
            r":2: name '펄스폭변조' of 'p2' also belongs to 'pwm'",
        ),
        (
            [{**GOOD, "definitions": {"poem": "듀티비를 바꾸어 평균 전압을 조절하는 방식이다."}}],
            r":1: field 'definitions': unknown register 'poem'",
        ),
        (
            [{**GOOD, "definitions": {"textbook": "짧다."}}],
            r":1: field 'definitions.textbook': 3 characters, expected 20-800",
        ),
        (
            [{**GOOD, "definition": "듀티비를 바꾸어 평균 전압을 조절하는 방식이다."}],
            r":1: give either 'definition' or 'definitions'",
        ),
        ([{**GOOD, "definitions": {"textbook": ""}}], r":1: field 'definitions' holds an empty text"),
        ([{**GOOD, "category": "magic"}], r":1: field 'category': unknown category 'magic'"),
        ([{**GOOD, "id": "PWM-1"}], r":1: field 'id' must be lowercase"),
        ([{**GOOD, "confusables": ["pfm"]}], r":1: field 'confusables': 'pfm' is not another concept"),
        (
            [{**GOOD, "acronym": "PWM"}, {**GOOD, "id": "p2", "term": "변조", "acronym": "PWM"}],
            r":2: name 'acronym:PWM' of 'p2' also belongs to 'pwm'",
        ),
        ([{**GOOD, "aliases": "펄스"}], r":1: field 'aliases' must be list\[str\]"),
    ],
)
def test_glossary_validator_names_line_and_field(tmp_path, lines, message):
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_glossary(path)
