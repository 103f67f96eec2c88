"""src.evaluate: metrics against hand-computed values, the bootstrap, the STS reader, BM25 on a toy
corpus, the report folder on the tiny model, and every bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.data import DataError, EvalConcept, EvalQuery, Passage, TermPair, Triplet, read_jsonl
from src.evaluate import (
    bm25_scores,
    concept_task,
    dense_scores,
    label_recall,
    main,
    pair_tasks,
    paired_bootstrap,
    query_kind,
    rank_top_k,
    read_sts,
    retrieval_metrics,
    synthetic_task,
)
from src.gate import main as gate_main
from tests.conftest import export_copy

ROOT = Path(__file__).resolve().parents[1]
STS_HEADER = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"


def test_metrics_match_hand_computed_values():
    ranked = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    m = retrieval_metrics(ranked, [{1, 3}, {0}])
    expected = {
        "recall@1": [0, 0],
        "recall@5": [1, 1],
        "recall@10": [1, 1],
        "mrr@10": [1 / 2, 1 / 4],
        "ndcg@10": [(1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3)), 1 / np.log2(5)],
        "map@100": [(1 / 2 + 2 / 4) / 2, 1 / 4],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(m[name], values, err_msg=name)
    assert m["ndcg@10"][0] == pytest.approx(0.65092, abs=1e-5)


def test_ranking_is_descending_with_stable_ties():
    scores = np.array([[0.1, 0.9, 0.9, 0.5]])
    assert rank_top_k(scores, 3).tolist() == [[1, 2, 3]]


def test_paired_bootstrap():
    rng = np.random.default_rng(1)
    b = rng.random(400)
    assert paired_bootstrap(b + 0.1, b, n=200, seed=0) == pytest.approx((0.1, 0.1, 0.1))
    noise = rng.normal(0, 1, 400)
    mean, low, high = paired_bootstrap(noise, np.zeros(400), n=2000, seed=0)
    assert low < mean < high and low < 0 < high and high - low == pytest.approx(4 * 1.96 / 20 / 2, rel=0.25)
    assert paired_bootstrap(noise, np.zeros(400), n=2000, seed=0) == (mean, low, high)


def test_sts_reader_keeps_quotes_and_checks_the_layout(tmp_path):
    good = tmp_path / "sts.tsv"
    good.write_text(
        STS_HEADER + "\n"
        'main-news\tf\t2024\t0001\t4.5\t그는 "괜찮다"고 말했다.\t그는 괜찮다고 했다.\n'
        "main-news\tf\t2024\t0002\t0.0\t비가 온다.\t주가가 올랐다.\n"
        "main-forum\tf\t2024\t0003\t2.4\t고양이가 잔다.\t강아지가 잔다.\n",
        encoding="utf-8",
    )
    first, second, gold = read_sts(good)
    assert first[0] == '그는 "괜찮다"고 말했다.' and gold.tolist() == [4.5, 0.0, 2.4]
    cases = {
        "header": ("a\tb\n", r":1: not the KorSTS layout"),
        "columns": (
            STS_HEADER + "\nmain-news\tf\t2024\t1\t3.0\tonly one sentence\n",
            r":2: expected 7 tab-separated",
        ),
        "score": (STS_HEADER + "\nx\tf\t2024\t1\thigh\ta\tb\n", r":2: column 'score' must be a number"),
        "range": (STS_HEADER + "\nx\tf\t2024\t1\t7\ta\tb\n", r":2: score must be within 0-5"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.tsv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            read_sts(path)


def test_shipped_sts_sample_is_valid():
    first, _, gold = read_sts(Path(__file__).resolve().parents[1] / "data" / "sts_ko_sample.tsv")
    assert (
        len(first) >= 100
        and gold.min() == 0
        and gold.max() == 5
        and np.histogram(gold, bins=5)[0].min() >= 10
    )


def test_bm25_with_korean_morphemes_on_a_toy_corpus():
    docs = [
        "벅 컨버터는 출력 전압을 낮춘다.",
        "부스트 컨버터는 출력 전압을 높인다.",
        "저항은 전류를 제한한다.",
    ]
    scores = bm25_scores(["전압을 낮추는 컨버터", "저항이 뭐야?", "PWM"], docs)
    assert scores.shape == (3, 3)
    assert scores[0].argmax() == 0 and scores[1].argmax() == 2
    assert not scores[2].any()  # no known token: all zeros, no error


def test_query_kind_spots_acronyms():
    assert [query_kind(q) for q in ["PWM이 뭐야?", "I2C 동작 원리", "SoC 뜻", "벅 컨버터", "What is Buck converter?"]] == [
        "acronym", "acronym", "acronym", "term", "term",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def split(synth_dir) -> Path:
    return synth_dir


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, tmp_path_factory) -> Path:
    """A model folder that records the tiny encoder as its base, as src.train does."""
    folder = tmp_path_factory.mktemp("m") / "tuned"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "training_summary.json").write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    return folder


def test_dense_scores_match_separate_encodes(split, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    from src.evaluate import TestSet  # imported here: pytest would try to collect a module-level Test* class

    rows = read_jsonl(split / "test.jsonl", Triplet)[:6]
    corpus = read_jsonl(split / "corpus_test.jsonl", Passage)[:20]
    rows[0] = dataclasses.replace(rows[0], negative="말뭉치에 없는 오답 문단")  # not a corpus passage
    task = synthetic_task(TestSet(rows, corpus, [set() for _ in rows]))
    other = dataclasses.replace(
        task, key="other", queries=["다른 질의"], documents=[corpus[3].text, "새 문단"]
    )
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    got = dense_scores(model, [task, other], rows, None, batch_size=4)

    def enc(texts: list[str]) -> np.ndarray:
        return model.encode_document(texts, normalize_embeddings=True, convert_to_numpy=True)

    def query(texts: list[str]) -> np.ndarray:
        return model.encode_query(texts, normalize_embeddings=True, convert_to_numpy=True)

    queries = query([r.query for r in rows])
    np.testing.assert_allclose(got.scores["synthetic"], queries @ enc([p.text for p in corpus]).T, atol=1e-5)
    np.testing.assert_allclose(got.scores["other"], query(["다른 질의"]) @ enc(other.documents).T, atol=1e-5)
    np.testing.assert_allclose(
        got.triplet_pos, np.sum(queries * enc([r.positive for r in rows]), 1), atol=1e-5
    )
    np.testing.assert_allclose(
        got.triplet_neg, np.sum(queries * enc([r.negative for r in rows]), 1), atol=1e-5
    )


def run(split: Path, model: Path, report: Path, *extra: str) -> int:
    return main(["--model_path", str(model), "--test_data", str(split / "test.jsonl"), "--corpus",
                 str(split / "corpus_test.jsonl"), "--sample_size", "120", "--report_dir", str(report), *extra])  # fmt: skip


@pytest.mark.slow
def test_report_folder_side_by_side_and_deterministic(split, tuned, tmp_path, capsys):
    assert run(split, tuned, tmp_path / "a") == 0
    out = capsys.readouterr().out
    assert "BM25 (kiwi)" in out and "nDCG@10 gain vs" in out and "STS" in out
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "independent.png",
        "metrics.json",
        "metrics.png",
        "report.md",
        "styles.png",
    ]
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert len(metrics["systems"]) == 3 and metrics["data"]["queries"] == 120
    base, tuned_name = [s for s in metrics["systems"] if s.startswith("base")], next(iter(metrics["systems"]))
    assert base and all(v == 0 for v in metrics["difference"].values())  # identical weights: no difference
    assert metrics["systems"][tuned_name]["sts_spearman"] is not None
    assert set(metrics["slices"]) == {"style", "category", "kind"}
    independent = metrics["independent"]
    assert independent["part"] == "test" and list(independent["tasks"]) == ["a", "b", "c_ko_en", "c_en_ko"]
    for key, task in independent["tasks"].items():
        assert task["data"]["queries"] > 0 and len(task["systems"]) == 3, key
        assert task["systems"][tuned_name] == task["systems"][base[0]], key  # identical weights
        assert set(task["slices"]) >= (
            {"glossary", "category"} if key.startswith("c") else {"style", "register", "category"}
        )
    assert set(independent["tasks"]["a"]["slices"]["synthetic_split"]) <= {"train", "test"}
    lines = out.splitlines()
    assert lines[0].startswith("Independent sets (test part") and lines[2].startswith(
        "(a) seen concepts, new wording"
    )
    assert [line.split()[0] for line in lines[2:8]] == ["(a)", "(b)", "(c)", "(c)", "synthetic", "STS"]
    assert "## 질의 스타일별 nDCG@10" in (tmp_path / "a" / "report.md").read_text()
    assert (
        gate_main(["--metrics", str(tmp_path / "a" / "metrics.json")]) == 1
    )  # real output: no gain, gate fails
    assert "FAIL  ndcg_gain" in capsys.readouterr().out
    assert run(split, tuned, tmp_path / "b") == 0
    assert (tmp_path / "a" / "metrics.json").read_text().replace("/a", "/b") == (
        tmp_path / "b" / "metrics.json"
    ).read_text()


@pytest.mark.parametrize("case, expected", [
    ("missing_model", "model folder not found"),
    ("missing_test", "argument --test_data: {tmp}/d/test.jsonl: file not found"),
    ("malformed", ":2: malformed JSON"),
    ("wrong_corpus", "corpus lacks"),
    ("sts_layout", "not the KorSTS layout"),
    ("eval_set_malformed", "seen_wording.jsonl:3: malformed JSON"),
    ("eval_set_bad_field", "unseen_concepts.jsonl:1: field 'queries[0].style' is empty"),
    ("eval_dir_without_sets", "no independent evaluation set here"),
])  # fmt: skip
def test_bad_input_gives_one_error_and_no_report(split, tuned, tmp_path, capsys, case, expected):
    data = tmp_path / "d"
    shutil.copytree(split, data)
    model, extra = tuned, []
    if case == "missing_model":
        model = tmp_path / "nope"
    elif case == "missing_test":
        (data / "test.jsonl").unlink()
    elif case == "malformed":
        (data / "test.jsonl").write_text((split / "test.jsonl").read_text().splitlines()[0] + "\n{oops\n")
    elif case == "wrong_corpus":
        shutil.copy(split / "corpus_train.jsonl", data / "corpus_test.jsonl")
    elif case == "sts_layout":
        (data / "sts.tsv").write_text("id,score,a,b\n1,3,x,y\n")
        extra = ["--sts", str(data / "sts.tsv")]
    elif case.startswith("eval_"):
        shutil.copytree(ROOT / "data" / "eval", data / "eval")
        extra = ["--eval_dir", str(data / "eval")]
        if case == "eval_set_malformed":
            lines = (data / "eval" / "seen_wording.jsonl").read_text().splitlines()
            (data / "eval" / "seen_wording.jsonl").write_text(
                "\n".join([*lines[:2], "{oops", *lines[3:]]) + "\n"
            )
        elif case == "eval_set_bad_field":
            path = data / "eval" / "unseen_concepts.jsonl"
            lines = path.read_text().splitlines()
            first = json.loads(lines[0])
            first["queries"][0]["style"] = " "
            path.write_text("\n".join([json.dumps(first, ensure_ascii=False), *lines[1:]]) + "\n")
        else:
            for f in (data / "eval").glob("*.jsonl"):
                f.unlink()
    assert run(data, model, tmp_path / "report", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and expected.format(tmp=tmp_path) in err[-1]
    assert not (tmp_path / "report").exists()


def test_bootstrap_over_concepts_is_wider_than_over_queries():
    # 10 concepts x 50 queries; the gain is +1 on five concepts and -1 on the others: no real effect
    diff = np.repeat([1.0, -1.0] * 5, 50)
    groups = [f"c{i // 50}" for i in range(500)]
    _, low_q, high_q = paired_bootstrap(diff, np.zeros(500), n=2000, seed=0)
    mean, low_c, high_c = paired_bootstrap(diff, np.zeros(500), n=2000, seed=0, groups=groups)
    assert mean == 0 and high_q - low_q < 0.2  # per query: looks precise
    assert low_c < -0.4 and high_c > 0.4  # per concept: 10 independent units, a wide interval


def test_label_recall_counts_relevant_documents_in_the_top_k():
    ranked = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    got = label_recall(ranked, [{0, 3}, {0, 1}], ["forum", "exam", "exam", "forum"], k=2)
    assert got == {"exam": (1, 0.0), "forum": (3, pytest.approx(1 / 3))}


def concept(cid: str, split: str, passages: dict, queries: list[tuple[str, str]]) -> EvalConcept:
    return EvalConcept(cid, cid, "passive", split, passages, [EvalQuery(s, t) for s, t in queries])


def test_concept_and_pair_tasks_keep_each_part_to_itself():
    concepts = [
        concept(
            "r",
            "dev",
            {"forum": "저항 이야기", "exam": "저항 요약"},
            [("short", "저항 값"), ("typo", "저황")],
        ),
        concept(
            "c", "test", {"manual": "콘덴서 점검", "forum": "콘덴서 답"}, [("symptom", "전기를 모으는 부품")]
        ),
        concept("l", "test", {"datasheet": "인덕터 사양"}, [("mixed", "inductor 포화")]),
    ]
    task = concept_task("a", "(a)", concepts, "test", held_out={"l"})
    assert task.queries == ["전기를 모으는 부품", "inductor 포화"]
    assert task.documents == ["콘덴서 점검", "콘덴서 답", "인덕터 사양"]
    assert task.relevant == [{0, 1}, {2}] and task.concepts == ["c", "l"]
    assert task.query_slices["style"] == ["symptom", "mixed"]
    assert task.query_slices["synthetic_split"] == ["train", "test"]
    assert task.document_slices["register"] == ["manual", "forum", "datasheet"]
    pairs = [TermPair("저항", "resistor", "passive", "dev", True), TermPair("표피 효과", "skin effect",
             "electromagnetics", "test", False), TermPair("인덕터", "inductor", "passive", "test", True)]  # fmt: skip
    ko_en, en_ko = pair_tasks(pairs, "test")
    assert (ko_en.queries, ko_en.documents, ko_en.relevant) == (
        ["표피 효과", "인덕터"],
        ["skin effect", "inductor"],
        [{0}, {1}],
    )
    assert (en_ko.queries, en_ko.documents) == (["skin effect", "inductor"], ["표피 효과", "인덕터"])
    assert ko_en.metric == "mrr@10" and ko_en.query_slices["glossary"] == ["outside", "in glossary"]


@pytest.mark.slow
def test_onnx_backend_reports_the_same_quality_as_pytorch(split, tuned, tmp_path, capsys):
    """``--backend onnx`` ranks exactly as PyTorch (fp32), int8 within a small tolerance; the base stays on
    PyTorch, and a model without the variant is refused before any encoding."""
    assert run(split, tuned, tmp_path / "onnx", "--eval_dir", "", "--sts", "", "--backend", "onnx") == 2
    assert "no onnx variant (run: python -m src.export" in capsys.readouterr().err
    exported = export_copy(tuned, tmp_path / "exported" / "tuned")
    reports = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        assert (
            run(split, exported, tmp_path / backend, "--eval_dir", "", "--sts", "", "--backend", backend) == 0
        )
        reports[backend] = json.loads((tmp_path / backend / "metrics.json").read_text())
    torch_ndcg = reports["torch"]["systems"]["fine-tuned (tuned)"]["ndcg@10"]
    assert (
        reports["onnx"]["backend"] == "onnx"
        and reports["onnx"]["roles"]["fine_tuned"] == "fine-tuned (tuned) [onnx]"
    )
    assert reports["onnx"]["systems"]["fine-tuned (tuned) [onnx]"]["ndcg@10"] == pytest.approx(
        torch_ndcg, abs=1e-4
    )
    assert reports["onnx-int8"]["systems"]["fine-tuned (tuned) [onnx-int8]"]["ndcg@10"] == pytest.approx(
        torch_ndcg, abs=0.02
    )
    base = next(s for s in reports["onnx"]["systems"] if s.startswith("base"))
    assert reports["onnx"]["systems"][base] == reports["torch"]["systems"][base]  # the baseline on PyTorch
