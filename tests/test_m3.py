"""BGE-M3's three modes on a tiny M3-style folder: the heads survive training, the output loads with
both SentenceTransformer and FlagEmbedding's BGEM3FlagModel, the mode scores match FlagEmbedding's
own scoring, and evaluation and scoring expose dense, sparse, multi-vector and hybrid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src import evaluate, m3, train
from src.data import Triplet, read_jsonl, write_jsonl
from tests.conftest import export_copy

pytestmark = pytest.mark.slow  # every test here trains, serves or builds an environment

TEXTS = [
    "PWM이 뭐야?",
    "펄스 폭 변조는 듀티비로 평균 전압을 조절한다.",
    "벅 컨버터는 전압을 낮춘다.",
    "I2C 풀업 저항",
]


@pytest.fixture(scope="module")
def data(synth_dir, tmp_path_factory) -> Path:
    """The session's synthesized data and a 300-row training slice (small.jsonl) beside it."""
    out = tmp_path_factory.mktemp("m3-data")
    for name in ("test.jsonl", "corpus_test.jsonl"):
        (out / name).symlink_to(synth_dir / name)
    write_jsonl(out / "small.jsonl", read_jsonl(synth_dir / "train.jsonl", Triplet)[:300])
    return out


@pytest.fixture(scope="module")
def trained_m3(tiny_m3_dir, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("m3-trained") / "model"
    assert train.main(["--model_name", str(tiny_m3_dir), "--train_data", str(data / "small.jsonl"),
                       "--output_dir", str(out), "--use_cpu", "--batch_size", "8", "--max_steps", "4",
                       "--eval_steps", "2", "--learning_rate", "1e-3"]) == 0  # fmt: skip
    return out


def test_training_carries_the_heads_and_both_libraries_load_the_output(
    tiny_m3_dir, trained_m3, tiny_model_dir
):
    from sentence_transformers import SentenceTransformer

    assert m3.is_m3(tiny_m3_dir) and m3.is_m3(trained_m3) and not m3.is_m3(tiny_model_dir)
    for head in m3.HEADS:
        assert (trained_m3 / head).read_bytes() == (tiny_m3_dir / head).read_bytes()
    summary = json.loads((trained_m3 / "training_summary.json").read_text())
    assert summary["m3_heads"] == list(m3.HEADS)
    st = SentenceTransformer(str(trained_m3), device="cpu")
    flag = m3.load(trained_m3)
    out = m3.encode(flag, TEXTS, batch_size=4, max_length=64)
    # the encoder was trained (it differs from the base) and both libraries see the same dense vectors
    base = SentenceTransformer(str(tiny_m3_dir), device="cpu").encode(TEXTS, normalize_embeddings=True)
    dense = st.encode(TEXTS, normalize_embeddings=True)
    assert not np.allclose(base, dense, atol=1e-4)
    np.testing.assert_allclose(out.dense, dense, atol=1e-5)
    assert any(out.sparse) and all(v.shape[1] == 32 for v in out.colbert)


def test_mode_scores_match_flagembedding(tiny_m3_dir):
    flag = m3.load(tiny_m3_dir)
    q = m3.encode(flag, TEXTS[:2], batch_size=4, max_length=64)
    p = m3.encode(flag, TEXTS, batch_size=4, max_length=64)
    scores = m3.mode_scores(q, p, (1.0, 0.3, 1.0))
    for i in range(2):
        for j in range(len(TEXTS)):
            lexical = flag.compute_lexical_matching_score(
                {str(t): w for t, w in q.sparse[i].items()}, {str(t): w for t, w in p.sparse[j].items()}
            )
            assert scores["sparse"][i, j] == pytest.approx(float(lexical), rel=1e-5, abs=1e-6)
            assert scores["colbert"][i, j] == pytest.approx(
                float(flag.colbert_score(q.colbert[i], p.colbert[j])), rel=1e-5
            )
            expected = (scores["dense"][i, j] + 0.3 * scores["sparse"][i, j] + scores["colbert"][i, j]) / 2.3
            assert scores["hybrid"][i, j] == pytest.approx(expected, rel=1e-6)
    assert max(scores["sparse"][i, i] for i in range(2)) > 0  # a text shares all its tokens with itself


def test_evaluate_reports_the_four_modes_for_m3_and_notes_their_absence(
    trained_m3, tiny_model_dir, data, tmp_path
):
    common = ["--test_data", str(data / "test.jsonl"), "--corpus", str(data / "corpus_test.jsonl"),
              "--sample_size", "40", "--sts", "", "--bootstrap", "100"]  # fmt: skip
    assert (
        evaluate.main(["--model_path", str(trained_m3), "--report_dir", str(tmp_path / "m3"), *common]) == 0
    )
    metrics = json.loads((tmp_path / "m3" / "metrics.json").read_text())
    tuned, base = metrics["roles"]["fine_tuned"], metrics["roles"]["baseline"]
    for name in (tuned, base):
        for mode in ("sparse", "colbert", "hybrid"):
            assert 0 <= metrics["systems"][f"{name} {mode}"]["ndcg@10"] <= 1
        assert "M3 modes evaluated" in metrics["m3"][name]
    assert metrics["roles"]["bm25"] == "BM25 (kiwi)" and base.startswith("base (")
    assert "BGE-M3 검색 모드" in (tmp_path / "m3" / "report.md").read_text()

    assert evaluate.main(["--model_path", str(tiny_model_dir), "--baseline_model", "none",
                          "--report_dir", str(tmp_path / "dense"), *common]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "dense" / "metrics.json").read_text())
    assert list(metrics["systems"]) == [metrics["roles"]["fine_tuned"], "BM25 (kiwi)"]
    assert "dense only" in next(iter(metrics["m3"].values()))


def test_score_returns_sparse_and_colbert_for_m3(scoring, trained_m3):
    with scoring(trained_m3) as s:
        result = s.run(json.dumps({"texts": TEXTS[:2], "return_sparse": True, "return_colbert": True}))
        dense_only = s.run(json.dumps({"texts": ["x"]}))
        bad = s.run(json.dumps({"texts": ["x"], "return_sparse": "yes"}))
    assert len(result["embeddings"]) == 2 and len(result["sparse"]) == 2 and len(result["colbert"]) == 2
    assert all(isinstance(t, str) and w > 0 for weights in result["sparse"] for t, w in weights.items())
    assert all(len(vec) == 32 for token_vectors in result["colbert"] for vec in token_vectors)
    assert "sparse" not in dense_only
    assert bad.status_code == 400 and "return_sparse" in bad.get_data(as_text=True)


def test_score_serves_the_three_modes_from_onnx_as_from_pytorch(scoring, trained_m3, tmp_path):
    """The lean path: the ONNX transformer and the heads as numpy weights give PyTorch/FlagEmbedding's
    dense, sparse (same tokens, same weights) and ColBERT outputs; int8 stays close."""
    folder = export_copy(trained_m3, tmp_path / "model")
    body = json.dumps({"texts": TEXTS, "input_type": "query", "return_sparse": True, "return_colbert": True})
    results = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        with scoring(folder, backend) as s:
            results[backend] = s.run(body)
    torch_out = results["torch"]
    for backend, tolerance in (("onnx", 1e-5), ("onnx-int8", 0.05)):
        out = results[backend]
        np.testing.assert_allclose(out["embeddings"], torch_out["embeddings"], atol=tolerance)
        for want, have in zip(torch_out["sparse"], out["sparse"], strict=True):
            if backend == "onnx":
                assert set(have) == set(want)  # token strings decoded alike by tokenizers and transformers
            shared = set(have) & set(want)
            assert len(shared) >= 0.8 * len(want) and all(abs(have[t] - want[t]) < tolerance for t in shared)
        for want, have in zip(torch_out["colbert"], out["colbert"], strict=True):
            np.testing.assert_allclose(have, want, atol=tolerance)


def test_score_refuses_m3_outputs_for_a_dense_model(scoring, tiny_model_dir):
    with scoring(tiny_model_dir) as s:
        bad = s.run(json.dumps({"texts": ["x"], "return_colbert": True}))
    assert bad.status_code == 400 and "not a BGE-M3 model" in bad.get_data(as_text=True)


def test_unified_finetuning_backend_trains_all_three_heads(tiny_m3_dir, data, tmp_path):
    """FlagEmbedding's unified fine-tuning runs here on CPU (tiny model) and its output becomes a
    sentence-transformers folder that both libraries load, with trained sparse and ColBERT heads."""
    import torch
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "unified"
    assert train.main(["--backend", "flagembedding", "--model_name", str(tiny_m3_dir), "--train_data",
                       str(data / "small.jsonl"), "--output_dir", str(out), "--use_cpu", "--batch_size", "4",
                       "--max_steps", "8", "--learning_rate", "1e-3", "--max_seq_length", "48"]) == 0  # fmt: skip
    assert m3.is_m3(out) and (out / "modules.json").is_file()
    for head in m3.HEADS:
        before, after = torch.load(tiny_m3_dir / head), torch.load(out / head)
        assert not torch.allclose(before["weight"], after["weight"]), f"{head} was not trained"
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["backend"].startswith("flagembedding") and summary["m3_heads"] == list(m3.HEADS)
    dense = SentenceTransformer(str(out), device="cpu").encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(m3.encode(m3.load(out), TEXTS, 4, 64).dense, dense, atol=1e-5)


def test_unified_backend_refuses_a_diverged_model(tiny_m3_dir, data, poisoned_copy, tmp_path, capsys):
    base = poisoned_copy(tiny_m3_dir, tmp_path / "poisoned")
    out = tmp_path / "unified"
    assert train.main(["--backend", "flagembedding", "--base_model", str(base), "--train_data", str(data / "small.jsonl"),
                       "--output_dir", str(out), "--use_cpu", "--batch_size", "4", "--max_steps", "2",
                       "--max_seq_length", "48"]) == 2  # fmt: skip
    assert "training diverged" in capsys.readouterr().err and not out.exists()


def test_unified_backend_refuses_dense_only_models_and_unsupported_flags(
    tiny_model_dir, tiny_m3_dir, data, tmp_path, capsys
):
    base = ["--backend", "flagembedding", "--train_data", str(data / "small.jsonl"), "--use_cpu"]
    assert train.main([*base, "--model_name", str(tiny_model_dir), "--output_dir", str(tmp_path / "a")]) == 2
    assert "needs a BGE-M3 model" in capsys.readouterr().err
    assert (
        train.main([*base, "--model_name", str(tiny_m3_dir), "--output_dir", str(tmp_path / "b"), "--lora"])
        == 2
    )
    assert "--lora" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
