"""The independent evaluation sets (data/eval/): their size and coverage, the fixed dev/test split by
concept, and their independence from the glossary and from everything src.synth_data writes."""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from src.data import (
    DataError,
    load_eval_concepts,
    load_glossary,
    load_term_pairs,
    name_keys,
    normalize_name,
)
from src.domain import default_domain
from src.synth_data import SynthConfig, build_dataset, load_concepts, split_concepts

DATA = Path(__file__).resolve().parents[1] / "data"
EVAL = DATA / "eval"
SHINGLE = 40  # characters of normalized text that no eval passage may share with a glossary definition


def text_key(text: str) -> str:
    """Normalized text for the overlap checks: NFKC, lower case, letters and digits only."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


@pytest.fixture(scope="module")
def glossary():
    return load_glossary(DATA / "glossary_ko.jsonl")


@pytest.fixture(scope="module")
def seen():
    return load_eval_concepts(EVAL / "seen_wording.jsonl")


@pytest.fixture(scope="module")
def unseen():
    return load_eval_concepts(EVAL / "unseen_concepts.jsonl")


@pytest.fixture(scope="module")
def pairs():
    return load_term_pairs(EVAL / "term_pairs.jsonl")


@pytest.fixture(scope="module")
def training_texts(glossary):
    """Every text src.synth_data can write from the shipped files, with every option of the recipe on."""
    domain = default_domain()
    concepts = load_concepts(
        DATA / "glossary_ko.jsonl", DATA / "terms_electronics_ko.txt", DATA / "acronyms_ko.jsonl", domain
    )
    data = build_dataset(concepts, SynthConfig(query_noise=1.0, cross_lingual=3), domain)
    rows = data.train + data.test
    texts = {r.query for r in rows} | {r.positive for r in rows} | {r.negative for r in rows}
    return texts | {p.text for p in data.corpus_train + data.corpus_test}


def test_sizes_and_coverage(glossary, seen, unseen, pairs):
    assert len(seen) >= 150 and len(unseen) >= 150 and len(pairs) >= 300
    assert sum(not p.in_glossary for p in pairs) >= len(pairs) / 3
    ids = {c.id for c in glossary}
    assert {c.concept_id for c in seen} <= ids
    test_ids = split_concepts(glossary, SynthConfig().test_split, random.Random(SynthConfig().seed))
    in_test = sum(c.concept_id in test_ids for c in seen)
    assert in_test >= 10 and len(seen) - in_test >= 100  # concepts from both sides of the synthetic split
    for concepts in (seen, unseen):
        assert len({c.category for c in concepts}) >= 15
        for c in concepts:
            assert len(c.passages) >= 3 and len(c.queries) >= 4 and len({q.style for q in c.queries}) >= 3, (
                c.concept_id
            )


def test_unseen_concepts_are_outside_the_glossary_under_every_name(glossary, unseen, pairs):
    names = {k for c in glossary for k in name_keys(c)}
    for c in unseen:
        assert not set(name_keys(c)) & names, c.concept_id
    assert not {c.concept_id for c in unseen} & {c.id for c in glossary}


def test_term_pairs_say_truly_whether_the_glossary_names_them(glossary, pairs):
    names = {normalize_name(n) for c in glossary for n in (c.term, c.english, *c.aliases) if n}
    for p in pairs:
        assert p.in_glossary == bool({normalize_name(p.ko), normalize_name(p.en)} & names), p


def test_no_eval_text_appears_in_the_glossary_or_in_any_training_row(
    glossary, seen, unseen, pairs, training_texts
):
    own = {text_key(t) for t in training_texts}
    for c in glossary:
        own |= {text_key(t) for t in (*c.definitions.values(), *c.descriptions, *c.names)}
    texts = [t for c in seen + unseen for t in (*c.passages.values(), *(q.text for q in c.queries))]
    texts += [t for p in pairs if not p.in_glossary for t in (p.ko, p.en)]
    leaked = [t for t in texts if text_key(t) in own]
    assert not leaked, leaked[:5]


def test_no_eval_passage_copies_a_stretch_of_a_glossary_definition(glossary, seen, unseen):
    shingles = set()
    for c in glossary:
        for d in c.definitions.values():
            key = text_key(d)
            shingles |= {key[i : i + SHINGLE] for i in range(len(key) - SHINGLE + 1)}
    for c in seen + unseen:
        for text in c.passages.values():
            key = text_key(text)
            assert not {key[i : i + SHINGLE] for i in range(len(key) - SHINGLE + 1)} & shingles, (
                c.concept_id,
                text,
            )


def test_queries_are_not_bare_names(glossary, seen, unseen):
    names = {normalize_name(n) for c in [*glossary, *seen, *unseen] for n in c.names}
    for c in seen + unseen:
        for q in c.queries:
            assert normalize_name(q.text) not in names, (c.concept_id, q.text)


def test_every_concept_has_a_passage_that_does_not_name_it(seen, unseen):
    for c in seen + unseen:
        names = [normalize_name(n) for n in c.names]
        assert any(not any(n in normalize_name(t) for n in names) for t in c.passages.values()), c.concept_id


def test_split_is_by_concept_balanced_and_consistent_across_sets(glossary, seen, unseen, pairs):
    for records in (seen, unseen, pairs):
        parts = Counter(r.split for r in records)
        assert 0.35 < parts["dev"] / len(records) < 0.65, parts
    # a concept lies in the same part in every set: (a) and the pairs the glossary names, (b) and the other pairs
    owner = {normalize_name(n): c.id for c in glossary for n in (c.term, c.english, *c.aliases) if n}
    part_of = {c.concept_id: c.split for c in seen}
    unseen_part = {normalize_name(n): c.split for c in unseen for n in c.names}
    checked = 0
    for p in pairs:
        concept = owner.get(normalize_name(p.en)) or owner.get(normalize_name(p.ko))
        expected = part_of.get(concept) if concept else unseen_part.get(normalize_name(p.en))
        if expected:
            assert p.split == expected, p
            checked += 1
    assert checked >= 100


def test_loaders_name_the_line_and_field_of_bad_records(tmp_path):
    good = ('{"concept_id": "x", "term": "표피 효과", "category": "electromagnetics", "split": "dev", '
            '"passages": {"forum": "a", "exam": "b"}, "queries": [{"style": "typo", "text": "표피 효가"}]}')  # fmt: skip
    cases = {
        good.replace('"dev"', '"train"'): r":1: field 'split' must be one of dev, test",
        good.replace('"forum"', '"poem"'): r":1: field 'passages': needs 2\+ registers",
        good.replace('"typo"', '"joke"'): r":1: field 'queries': needs 1\+ queries with a style",
        good.replace('"text": "표피 효가"', '"text": 3'): r":1: field 'queries\[0\].text' must be str",
        good.replace(
            '{"style": "typo", "text": "표피 효가"}', '"q"'
        ): r":1: field 'queries' must be a list of JSON objects, got list",
        good + "\n" + good: r":2: duplicate concept_id 'x' \(first on line 1\)",
    }
    for text, message in cases.items():
        path = tmp_path / "set.jsonl"
        path.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=message):
            load_eval_concepts(path)
    path = tmp_path / "pairs.jsonl"
    pair = '{"ko": "표피 효과", "en": "skin effect", "category": "electromagnetics", "split": "test", "in_glossary": false}'
    path.write_text(
        pair + "\n" + pair.replace("표피 효과", "스킨 효과").replace("skin effect", "Skin-Effect") + "\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r":2: field 'en': 'Skin-Effect' already on line 1"):
        load_term_pairs(path)
