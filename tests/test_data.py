"""The shared JSONL schema module: validation errors name file, line and field; writes are atomic."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from src.data import DataError, Triplet, atomic_path, read_jsonl, write_jsonl, write_jsonl_files

GOOD = {
    "query": "PWM이 뭐야?",
    "positive": "펄스 폭 변조는 듀티비로 평균 전압을 조절한다.",
    "negative": "펄스 주파수 변조는 주파수를 바꾼다.",
    "concept_id": "pwm",
    "negative_concept_id": "pfm",
    "style": "acronym_question",
    "category": "power_electronics",
}


def _write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_preserves_records_and_korean(tmp_path):
    records = [Triplet(**GOOD), Triplet(**{**GOOD, "query": "펄스 폭 변조란?"})]
    path = tmp_path / "out" / "train.jsonl"
    assert write_jsonl(path, records) == 2
    assert read_jsonl(path, Triplet) == records
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert "PWM이 뭐야?" in first and list(json.loads(first)) == [f.name for f in dataclasses.fields(Triplet)]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_blank_lines_are_skipped_and_extra_keys_ignored(tmp_path):
    path = _write_lines(tmp_path / "a.jsonl", [json.dumps(GOOD), "", "   ", json.dumps({**GOOD, "extra": 1})])
    assert len(read_jsonl(path, Triplet)) == 2


@pytest.mark.parametrize(
    "lines, message",
    [
        ([json.dumps(GOOD), "{not json"], r"a\.jsonl:2: malformed JSON"),
        (
            [json.dumps(GOOD), json.dumps({k: v for k, v in GOOD.items() if k != "positive"})],
            r":2: missing field 'positive'",
        ),
        ([json.dumps({**GOOD, "query": 42})], r":1: field 'query' must be str, got int"),
        ([json.dumps({**GOOD, "query": "  "})], r":1: field 'query' is empty"),
        ([json.dumps([1, 2])], r":1: expected a JSON object, got list"),
        ([], r"a\.jsonl: file is empty"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, lines, message):
    path = _write_lines(tmp_path / "a.jsonl", lines)
    with pytest.raises(DataError, match=message):
        read_jsonl(path, Triplet)


def test_non_utf8_missing_and_directory(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"query": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        read_jsonl(bad, Triplet)
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        read_jsonl(tmp_path / "nope.jsonl", Triplet)
    with pytest.raises(DataError, match="not a regular file"):
        read_jsonl(tmp_path, Triplet)


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [Triplet(**GOOD)])
    before = path.read_bytes()

    def exploding():
        yield Triplet(**GOOD)
        raise RuntimeError("generator failed half-way")

    with pytest.raises(RuntimeError):
        write_jsonl(path, exploding())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]


def test_atomic_dir_replaces_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(KeyboardInterrupt), atomic_path(target, is_dir=True) as tmp:
        (tmp / "b.txt").write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "c.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]


def test_several_files_are_replaced_together_or_not_at_all(tmp_path):
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        write_jsonl(tmp_path / name, [{"old": name}])

    def breaks_halfway():
        yield {"new": 1}
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_jsonl_files(
            tmp_path, {"a.jsonl": [{"new": 0}], "b.jsonl": breaks_halfway(), "c.jsonl": [{"new": 2}]}
        )
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):  # a.jsonl was complete, yet it is not replaced alone
        assert (tmp_path / name).read_text() == json.dumps({"old": name}) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert write_jsonl_files(tmp_path, {"a.jsonl": [{"n": 1}], "b.jsonl": [{"n": 2}, {"n": 3}]}) == {
        "a.jsonl": 1,
        "b.jsonl": 2,
    }


def test_an_output_folder_that_is_a_file_is_refused_untouched(tmp_path):
    target = tmp_path / "report"
    target.write_text("my notes")
    with pytest.raises(DataError, match="exists and is not a folder"), atomic_path(target, is_dir=True):
        pass
    assert target.read_text() == "my notes" and [p.name for p in tmp_path.iterdir()] == ["report"]
