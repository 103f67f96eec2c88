"""src.gate: pass, each kind of failure, and malformed metrics.json."""

from __future__ import annotations

import json

import pytest

from src.gate import main

TUNED, BASE = "fine-tuned (m)", "base (e5-small-offline)"


def metrics(ndcg=(0.85, 0.80), low=0.03, sts=(88.0, 87.0)) -> dict:
    return {
        "roles": {"fine_tuned": TUNED, "baseline": BASE, "bm25": "BM25 (kiwi)"},
        "systems": {
            TUNED: {"ndcg@10": ndcg[0], "sts_spearman": sts[0]},
            BASE: {"ndcg@10": ndcg[1], "sts_spearman": sts[1]},
            "BM25 (kiwi)": {"ndcg@10": 0.7},
        },
        "bootstrap": {BASE: {"mean": ndcg[0] - ndcg[1], "low": low, "high": 0.07}},
    }


def run(tmp_path, data, *flags) -> int:
    path = tmp_path / "metrics.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return main(["--metrics", str(path), *flags])


def test_pass(tmp_path, capsys):
    assert run(tmp_path, metrics()) == 0
    assert "quality gate: passed" in capsys.readouterr().out


@pytest.mark.parametrize("data, failed", [
    (metrics(ndcg=(0.81, 0.80)), "FAIL  ndcg_gain"),
    (metrics(low=-0.001), "FAIL  gain_significant"),
    (metrics(sts=(84.0, 87.0)), "FAIL  sts_retention"),
    (metrics(sts=(None, 87.0)), "no STS score"),
])  # fmt: skip
def test_fail(tmp_path, capsys, data, failed):
    assert run(tmp_path, data) == 1
    out = capsys.readouterr().out
    assert failed in out and "quality gate: failed" in out


def test_margins_are_configurable(tmp_path):
    assert run(tmp_path, metrics(ndcg=(0.81, 0.80)), "--min_ndcg_gain", "0.005") == 0
    assert run(tmp_path, metrics(sts=(84.0, 87.0)), "--max_sts_drop", "3.5") == 0


@pytest.mark.parametrize("data, message", [
    ("{not json", "not valid JSON"),
    ("[1]", "expected a JSON object"),
    ({"systems": {}}, "no fine-tuned and baseline roles"),
    ({**metrics(), "bootstrap": {}}, "lacks bootstrap.base (e5-small-offline)"),
    ({**metrics(), "systems": {TUNED: {"ndcg@10": "high"}, BASE: {"ndcg@10": 0.8}}}, "must be a finite number"),
    # the gate guards deployment: a value it cannot compare fails closed (exit 2), it never passes
    (json.dumps(metrics()).replace("0.85", "Infinity"), "Infinity is not a number the gate can compare"),
    (json.dumps(metrics()).replace("0.85", "NaN"), "NaN is not a number the gate can compare"),
    (json.dumps(metrics()).replace("0.85", "1e999"), "ndcg@10 must be a finite number, got inf"),
    (json.dumps(metrics()).replace("0.85", "null"), "ndcg@10 must be a finite number, got None"),
    (metrics(low=None), "bootstrap.base (e5-small-offline).low must be a finite number, got None"),
    ({**metrics(), "roles": {"fine_tuned": [TUNED], "baseline": BASE}}, "no fine-tuned and baseline roles"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON (RecursionError"),
])  # fmt: skip
def test_malformed(tmp_path, capsys, data, message):
    assert run(tmp_path, data) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_missing_file_or_a_folder(tmp_path, capsys):
    assert main(["--metrics", str(tmp_path / "nope.json")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["--metrics", str(tmp_path)]) == 2
    assert "not a regular file" in capsys.readouterr().err
