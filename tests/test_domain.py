"""src.domain: the domain file is read whole, every problem is named by file and line, and synth_data
writes what the file says."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.data import DataError, GlossaryEntry
from src.domain import DEFAULT_FILE, QUERY_SLOTS, default_domain, load_domain
from src.synth_data import passages_for, query_candidates

ROOT = Path(__file__).resolve().parents[1]
MEDICAL = ROOT / "data" / "examples" / "medical_devices" / "templates_ko.yaml"
TEXT = DEFAULT_FILE.read_text(encoding="utf-8")


def line_of(needle: str) -> int:
    return next(n for n, line in enumerate(TEXT.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize("path", [DEFAULT_FILE, MEDICAL])
def test_shipped_domain_files_load(path):
    domain = load_domain(path)
    assert set(domain.queries) == set(QUERY_SLOTS) and "general" in domain.categories
    assert "textbook" in domain.registers and domain.consonant_final["M"] == "ㅁ"


@pytest.mark.parametrize("old, new, message, line", [
    ('    - "{A:이/가} 뭐야?"', '    - "{T:이/가} 뭐야?"', "uses slot {T}; allowed: A", '"{A:이/가} 뭐야?"'),
    ('    - "{A} 풀네임 알려줘"', '    - "풀네임 알려줘"', "must have exactly one slot {A}", '"{A} 풀네임 알려줘"'),
    ('    - "{A} 뜻이 뭐예요?"', '    - "{A:이} 뜻이 뭐예요?"', "particle '이' must be two Hangul forms", '"{A} 뜻이 뭐예요?"'),
    ("  keyword:", "  keywords:", "unknown style 'keywords'", "  keyword:"),
    ("  passive: ", "  Passive: ", "key 'Passive' must be lowercase", "  passive: "),
    ("  general: ", "  passive: ", "duplicate key 'passive'", "  general: "),
    ("  no_definition: ", "  no_definition: 3\n  x: ", "must be a non-empty text", "  no_definition: "),
    ('  acronym: "{A:은/는} {E}', '  acronym: "{A:은/는} {Q}', "uses slot {Q}", '  acronym: "{A:은/는}'),
    ("name: 전기·전자", "name: 전기: 전자", "malformed YAML: mapping values are not allowed", "name: 전기·전자"),
])  # fmt: skip
def test_a_broken_domain_file_is_named_by_line(tmp_path, old, new, message, line):
    assert TEXT.count(old) >= 1, old
    path = tmp_path / "templates.yaml"
    path.write_text(TEXT.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(DataError, match=message) as error:
        load_domain(path)
    assert error.value.line in (line_of(line), line_of(line) + 1), (error.value, line_of(line))


@pytest.mark.parametrize("text, message", [
    ("", "file is empty"),
    ("name: x\n", "missing section"),
    (TEXT.replace("  general: ", "  generalx: "), "must include 'general'"),
    (TEXT + "extra: 1\n", "unknown section 'extra'"),
    (TEXT.replace("name: 전기·전자", "name: 전기\x07"), "malformed YAML: unacceptable character"),
])  # fmt: skip
def test_a_domain_file_lacking_what_synth_needs_is_refused(tmp_path, text, message):
    path = tmp_path / "templates.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_domain(path)


def test_synth_writes_what_the_domain_file_says(tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text(TEXT.replace('"{T}의 정의"', '"{T:은/는} 우리 분야 용어"').replace(
        "전기·전자 분야에서 쓰이는 용어이다.", "시험 분야의 용어이다."), encoding="utf-8")  # fmt: skip
    domain = load_domain(path)
    concept = GlossaryEntry(id="buck", term="벅 컨버터", category="power_electronics")
    term_queries = query_candidates(concept, domain)[0]["full_name_question"]
    assert "벅 컨버터는 우리 분야 용어" in term_queries and "벅 컨버터의 정의" not in term_queries
    assert passages_for(concept, domain) == ["벅 컨버터는 시험 분야의 용어이다."]
    assert passages_for(concept, default_domain()) == ["벅 컨버터는 전기·전자 분야에서 쓰이는 용어이다."]
