"""src.synth_data: Korean particles, concept-level split without leakage, hard negatives,
determinism, the seed-style inputs on their own, and every bad-input case."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from src.data import Passage, Triplet, load_glossary, read_jsonl
from src.domain import QUERY_SLOTS, default_domain
from src.synth_data import drop_final, main, passages_for, vowel_slip, with_particle

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
OUTPUTS = ["train.jsonl", "test.jsonl", "corpus_train.jsonl", "corpus_test.jsonl"]


@pytest.mark.parametrize(
    "word, particle, reading, expected",
    [
        ("PWM", "이/가", None, "PWM이"),  # 엠
        ("ADC", "이/가", None, "ADC가"),  # 씨
        ("RS-485", "은/는", None, "RS-485는"),  # 오
        ("LM317", "을/를", None, "LM317을"),  # 칠
        ("I2C", "과/와", None, "I2C와"),
        ("MOSFET", "이/가", "모스펫", "MOSFET이"),  # read as a word
        ("벅 컨버터", "을/를", None, "벅 컨버터를"),
        ("저항", "과/와", None, "저항과"),
        ("회로", "으로/로", None, "회로로"),
        ("채널", "으로/로", None, "채널로"),  # rieul takes 로
        ("접합", "으로/로", None, "접합으로"),
        ("피상전력(VA)", "이란/란", None, "피상전력(VA)란"),  # the ')' is skipped: 에이
    ],
)
def test_particles_follow_the_final_sound(word, particle, reading, expected):
    assert with_particle(word, particle, reading) == expected


def run(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    code = main(["--pairs-per-term", "6", "--pairs-per-acronym", "8", "--output-dir", str(out), *extra])
    return code, out


@pytest.fixture(scope="module")
def generated(synth_dir):
    out = synth_dir  # the defaults: 6 pairs per term, 8 per acronym
    return {
        name: read_jsonl(out / name, Passage if name.startswith("corpus") else Triplet) for name in OUTPUTS
    }


def test_every_style_is_populated_on_both_sides(generated):
    for split in ("train.jsonl", "test.jsonl"):
        assert {r.style for r in generated[split]} == set(QUERY_SLOTS), split
    n_train, n_test = len(generated["train.jsonl"]), len(generated["test.jsonl"])
    assert 0.07 < n_test / (n_train + n_test) < 0.13  # --test-split 0.1 of the concepts


def test_no_test_concept_leaks_into_train(generated):
    train, test = generated["train.jsonl"], generated["test.jsonl"]
    test_concepts = {r.concept_id for r in test}
    assert test_concepts.isdisjoint({r.concept_id for r in train} | {r.negative_concept_id for r in train})
    assert {r.negative_concept_id for r in test} <= test_concepts
    test_passages = {p.text for p in generated["corpus_test.jsonl"]}
    assert test_passages.isdisjoint({r.positive for r in train} | {r.negative for r in train})
    assert {r.query for r in test}.isdisjoint({r.query for r in train})
    assert {p.concept_id for p in generated["corpus_test.jsonl"]} == test_concepts


def test_negatives_never_share_the_query_concept_and_are_hard(generated):
    glossary = {c.id: c for c in load_glossary(DATA / "glossary_ko.jsonl")}
    corpus = {}
    for p in generated["corpus_train.jsonl"] + generated["corpus_test.jsonl"]:
        corpus.setdefault(p.concept_id, set()).add(p.text)
    for split in ("train.jsonl", "test.jsonl"):
        rows = generated[split]
        same_split = {r.concept_id for r in rows}
        for r in rows:
            assert r.negative_concept_id != r.concept_id
            assert r.negative not in corpus[r.concept_id] and r.positive in corpus[r.concept_id]
            assert r.negative in corpus[r.negative_concept_id]
            siblings = set(glossary[r.concept_id].confusables) & same_split
            if siblings:
                assert r.negative_concept_id in siblings
            else:
                assert glossary[r.negative_concept_id].category == r.category
    assert all(
        len({(r.query, r.positive, r.negative) for r in generated[s]}) == len(generated[s])
        for s in OUTPUTS[:2]
    )


def test_queries_of_each_style_look_right(generated):
    rows = {(r.concept_id, r.style, r.query) for r in generated["train.jsonl"] + generated["test.jsonl"]}
    pwm = {q for c, s, q in rows if c == "pwm" and s == "acronym_question"}
    assert pwm and all("PWM" in q for q in pwm)
    described = [(c, q) for c, s, q in rows if s == "definition_to_term"]
    glossary = {c.id: c for c in load_glossary(DATA / "glossary_ko.jsonl")}
    for concept_id, query in described:
        assert glossary[concept_id].term not in query


@pytest.mark.slow
def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    _, a = run(tmp_path / "a", "--seed", "7")
    _, b = run(tmp_path / "b", "--seed", "7")
    _, c = run(tmp_path / "c", "--seed", "8")
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "test.jsonl").read_bytes() != (c / "test.jsonl").read_bytes()


@pytest.mark.slow
def test_row_split_option_mixes_concepts_for_comparison(tmp_path):
    code, out = run(tmp_path, "--split", "row")
    assert code == 0
    train = read_jsonl(out / "train.jsonl", Triplet)
    test = read_jsonl(out / "test.jsonl", Triplet)
    assert len({r.concept_id for r in test} & {r.concept_id for r in train}) > 50


def test_seed_style_files_alone_and_generic_warning(tmp_path, capsys):
    terms = tmp_path / "terms.txt"
    terms.write_text("벅 컨버터\n# comment\n\n새로운 용어\n", encoding="utf-8")
    acronyms = tmp_path / "acr.jsonl"
    rows = [
        {
            "acronym": "PWM",
            "full": "Pulse Width Modulation",
            "definition": "듀티비로 평균 전압을 조절하는 방식이다.",
        },
        {
            "acronym": "ADC",
            "full": "아날로그-디지털 변환기",
            "definition": "아날로그 신호를 디지털 값으로 바꾸는 회로이다.",
        },
        {
            "acronym": "DAC",
            "full": "Digital-to-analog converter",
            "definition": "디지털 값을 아날로그 신호로 바꾼다.",
        },
    ]
    acronyms.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    args = ("--glossary", "", "--terms", str(terms), "--acronyms", str(acronyms))
    code, out = run(tmp_path, *args, "--test-split", "0.4")
    assert code == 0
    corpus = read_jsonl(out / "corpus_train.jsonl", Passage) + read_jsonl(out / "corpus_test.jsonl", Passage)
    assert len({p.concept_id for p in corpus}) == 5
    assert "warning: 2 concepts have no definition" in capsys.readouterr().err
    code, _ = run(tmp_path / "small", *args, "--test-split", "0.2")  # 1 test concept is too few
    assert code == 2 and "each side needs at least 2" in capsys.readouterr().err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "case, flag, expected",
    [
        ("malformed", "--glossary", r"glossary\.jsonl:2: malformed JSON"),
        ("missing_field", "--glossary", r"glossary\.jsonl:2: missing field 'term'"),
        ("wrong_type", "--acronyms", r"acronyms\.jsonl:1: field 'definition' must be str, got int"),
        ("empty", "--glossary", r"glossary\.jsonl: file is empty"),
        ("nonexistent", "--terms", r"nope\.txt: file not found"),
        ("non_utf8", "--terms", r"terms\.txt:2: not valid UTF-8"),
    ],
)
def test_bad_input_gives_one_error_and_leaves_outputs_untouched(tmp_path, capsys, case, flag, expected):
    good = (DATA / "glossary_ko.jsonl").read_bytes().splitlines(keepends=True)
    paths = {
        "malformed": lambda: _write(tmp_path / "glossary.jsonl", good[0] + b'{"id": "x",\n'),
        "missing_field": lambda: _write(
            tmp_path / "glossary.jsonl", good[0] + b'{"id": "x", "category": "analog"}\n'
        ),
        "wrong_type": lambda: _write(
            tmp_path / "acronyms.jsonl", b'{"acronym": "A", "full": "B", "definition": 3}\n'
        ),
        "empty": lambda: _write(tmp_path / "glossary.jsonl", b""),
        "nonexistent": lambda: tmp_path / "nope.txt",
        "non_utf8": lambda: _write(tmp_path / "terms.txt", "저항\n".encode() + "콘덴서\n".encode("cp949")),
    }
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.jsonl").write_text("previous run\n")
    code = main(["--output-dir", str(out), flag, str(paths[case]())])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert re.search(expected, err[0]), err[0]
    assert sorted(p.name for p in out.iterdir()) == ["train.jsonl"]
    assert (out / "train.jsonl").read_text() == "previous run\n"


@pytest.mark.slow
def test_seed_command_runs_from_the_command_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.synth_data",
            "--pairs-per-term",
            "6",
            "--pairs-per-acronym",
            "8",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "rows per query style" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)


def test_every_wording_becomes_a_passage_and_a_positive(generated, tmp_path):
    glossary = load_glossary(DATA / "glossary_ko.jsonl")
    several = next(c for c in glossary if len(c.definitions) >= 2)
    second = list(several.definitions.values())[1]
    domain = default_domain()
    assert second in passages_for(several, domain, "all") and second not in passages_for(
        several, domain, "first"
    )
    assert passages_for(several, domain, "first") == passages_for(several, domain, "all")[:-1]
    corpus = generated["corpus_train.jsonl"] + generated["corpus_test.jsonl"]
    assert sum(p.concept_id == several.id and p.text == second for p in corpus) == 1
    rows = generated["train.jsonl"] + generated["test.jsonl"]
    used = {r.positive for r in rows}
    wordings = [w for c in glossary for w in list(c.definitions.values())[1:]]
    assert sum(w in used for w in wordings) > 0.8 * len(wordings)
    assert run(tmp_path, "--wordings", "first")[0] == 0
    first_corpus = read_jsonl(tmp_path / "out" / "corpus_train.jsonl", Passage)
    assert not {p.text for p in first_corpus} & set(wordings)


@pytest.mark.parametrize(
    "op, text, allowed",
    [
        (
            vowel_slip,
            "컨버터",
            {"칸버터", "콘버터", "켠버터", "컨바터", "컨보터", "컨벼터", "컨버타", "컨버토", "컨버텨"},
        ),
        (drop_final, "용량", {"요량", "용랴"}),
    ],
)
def test_typing_noise_changes_one_syllable_as_a_neighbouring_key_would(op, text, allowed):
    rng = random.Random(0)
    assert {op(text, rng) for _ in range(200)} == allowed
    assert op("PWM", rng) == "PWM"  # nothing to change


@pytest.mark.slow
def test_noise_and_cross_lingual_rows_are_added_to_training_only(generated, tmp_path):
    code, out = run(tmp_path, "--query_noise", "0.5", "--cross_lingual", "3")
    assert code == 0
    train, test = read_jsonl(out / "train.jsonl", Triplet), read_jsonl(out / "test.jsonl", Triplet)
    assert test == generated["test.jsonl"]  # the test split keeps the templates' own queries
    clean = {(r.query, r.positive) for r in generated["train.jsonl"]}
    noisy_rows = [r for r in train if r.style == "noisy"]
    assert 0.3 * len(clean) < len(noisy_rows) < 0.6 * len(clean)
    assert all((r.query, r.positive) not in clean for r in noisy_rows)
    glossary = {c.id: c for c in load_glossary(DATA / "glossary_ko.jsonl")}
    cross = [r for r in train if r.style == "cross_lingual"]
    assert len(cross) > 2 * len({r.concept_id for r in generated["train.jsonl"]})
    for r in cross:
        c, other = glossary[r.concept_id], glossary[r.negative_concept_id]
        assert r.concept_id != r.negative_concept_id
        assert (r.query, r.positive, r.negative) in {
            (c.term, c.english, other.english),
            (c.english, c.term, other.term),
        } or (
            r.query == c.english
            and r.positive in c.definitions.values()
            and r.negative in other.definitions.values()
        )
    assert {r.concept_id for r in cross} <= {r.concept_id for r in generated["train.jsonl"]}


@pytest.mark.slow
def test_general_pairs_are_mixed_into_training_only(generated, tmp_path):
    topics = ["cooking", "travel", "history"]
    pairs = [
        {"topic": topics[i % 3], "query": f"일반 질의 {i}", "positive": f"일반 문단 {i}번의 설명입니다."}
        for i in range(40)
    ]
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    code, out = run(tmp_path, "--general", str(general), "--general_share", "0.005")
    assert code == 0
    train = read_jsonl(out / "train.jsonl", Triplet)
    mixed = [r for r in train if r.style == "general"]
    domain = len(generated["train.jsonl"])
    assert len(mixed) == min(40, round(domain * 0.005)) and len(train) == domain + len(mixed)
    by_passage = {p["positive"]: p for p in pairs}
    for r in mixed:
        assert r.category == "general" and r.concept_id != r.negative_concept_id
        assert by_passage[r.positive]["query"] == r.query
        assert by_passage[r.negative]["topic"] != by_passage[r.positive]["topic"]
    assert read_jsonl(out / "test.jsonl", Triplet) == generated["test.jsonl"]
    general.write_text('{"topic": "x", "query": "q"}\n', encoding="utf-8")
    assert run(tmp_path, "--general", str(general), "--general_share", "0.1")[0] == 2
