"""src.search and src.term_map: retrieval with a trained tiny model, the on-disk index cache, term
recommendation, corpus formats and their errors, and the exported graph against the similarities."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from src import search, term_map, train
from src.data import DataError, Triplet, load_glossary, read_jsonl, to_json_line, write_jsonl
from src.synth_data import main as synth_main
from tests.conftest import export_copy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_glossary(tmp_path_factory) -> Path:
    """40 glossary concepts that have acronyms (confusables dropped: they may point outside the subset)."""
    concepts = [c for c in load_glossary(ROOT / "data" / "glossary_ko.jsonl") if c.acronym][:40]
    path = tmp_path_factory.mktemp("glossary") / "glossary.jsonl"
    path.write_text("".join(to_json_line(dataclasses.replace(c, confusables=[])) for c in concepts))
    return path


@pytest.fixture(scope="module")
def trained(tiny_model_dir, small_glossary, tmp_path_factory) -> Path:
    """The tiny encoder trained 30 steps on triplets of the small glossary."""
    work = tmp_path_factory.mktemp("trained")
    argv = [
        "--glossary",
        str(small_glossary),
        "--terms",
        "",
        "--acronyms",
        "",
        "--output-dir",
        str(work / "data"),
        "--wordings",
        "first",  # the primary definition only: the passages the search corpus holds
    ]
    assert synth_main(argv) == 0
    rows = [r for split in ("train", "test") for r in read_jsonl(work / "data" / f"{split}.jsonl", Triplet)]
    write_jsonl(work / "rows.jsonl", rows)  # every concept: the test searches all 40
    out = work / "model"
    assert train.main(["--model_name", str(tiny_model_dir), "--train_data", str(work / "rows.jsonl"),
                       "--output_dir", str(out), "--use_cpu", "--dev_ratio", "0", "--batch_size", "16",
                       "--max_steps", "30", "--learning_rate", "3e-3", "--max_seq_length", "64"]) == 0  # fmt: skip
    return out


def top1_hit_rate(model_dir: Path, glossary: Path, cache: Path, backend: str = "torch") -> float:
    """Share of acronym questions ("PWM이 뭐야?"-style) whose top hit is their own concept."""
    docs, as_queries = search.load_corpus(glossary)
    model, folder = search.load(str(model_dir), backend)
    index = search.build_index(model, folder, docs, as_queries, cache, backend)
    concepts = load_glossary(glossary)
    queries = [f"{c.acronym}이 뭐야?" for c in concepts]
    hits = search.search(model, index, queries, top_k=1)
    return float(np.mean([docs[h[0][0]].doc_id == c.id for h, c in zip(hits, concepts, strict=True)]))


@pytest.mark.slow
def test_acronym_queries_find_their_concept_after_training(trained, tiny_model_dir, small_glossary, tmp_path):
    before = top1_hit_rate(tiny_model_dir, small_glossary, tmp_path)
    after = top1_hit_rate(trained, small_glossary, tmp_path)
    assert after >= 0.5 and after >= before + 0.3, (before, after)


@pytest.mark.slow
def test_onnx_backends_find_what_pytorch_finds(trained, small_glossary, tmp_path, capsys):
    folder = export_copy(trained, tmp_path / "model")
    rates = {
        b: top1_hit_rate(folder, small_glossary, tmp_path / "cache", b)
        for b in ("torch", "onnx", "onnx-int8")
    }
    assert rates["onnx"] == rates["torch"] > 0.5 and abs(rates["onnx-int8"] - rates["torch"]) <= 0.05, rates
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3  # one cached index per backend
    capsys.readouterr()
    argv = [
        "--model",
        str(folder),
        "--backend",
        "onnx-int8",
        "--corpus",
        str(small_glossary),
        "--query",
        "PWM이 뭐야?",
    ]
    assert search.main([*argv, "--cache_dir", str(tmp_path / "cache")]) == 0
    assert "model [onnx-int8]" in capsys.readouterr().out
    assert search.main(["--model", str(trained), "--backend", "onnx", "--query", "x"]) == 2  # never exported
    assert "no onnx variant (run: python -m src.export" in capsys.readouterr().err


@pytest.mark.slow
def test_index_cache_is_reused_and_invalidated(trained, small_glossary, tmp_path, capsys):
    docs, _ = search.load_corpus(small_glossary)
    model, folder = search.load(str(trained))
    first = search.build_index(model, folder, docs, False, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = search.build_index(model, folder, docs, False, tmp_path)
    assert "reusing" in capsys.readouterr().err
    np.testing.assert_array_equal(first.embeddings, again.embeddings)

    edited = [dataclasses.replace(docs[0], text=docs[0].text + " 추가 문장."), *docs[1:]]
    search.build_index(model, folder, edited, False, tmp_path)  # corpus changed
    search.build_index(model, folder, docs, True, tmp_path)  # encoded as queries (FAQ mode)
    weights = folder / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # model rewritten
    search.build_index(model, folder, docs, False, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 4
    assert "reusing" not in capsys.readouterr().err


@pytest.mark.slow
def test_related_terms_exclude_the_term_and_its_aliases(trained, small_glossary, tmp_path):
    docs, _ = search.load_corpus(small_glossary)
    model, folder = search.load(str(trained))
    index = search.build_index(model, folder, docs, False, tmp_path)
    concept = next(c for c in load_glossary(small_glossary) if c.aliases)
    for name in (concept.term, concept.acronym, concept.aliases[0].upper()):
        hits = search.related(model, index, name, top_k=5)
        assert len(hits) == 5 and concept.id not in {docs[j].doc_id for j, _ in hits}
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        # a concept is compared by its own embedding, whichever of its names is typed
        expected = (
            index.embeddings @ index.embeddings[docs.index(next(d for d in docs if d.doc_id == concept.id))]
        )
        assert np.isclose(hits[0][1], np.sort(expected)[-2], atol=1e-5)


@pytest.mark.slow
def test_hybrid_with_full_bm25_weight_ranks_by_keywords(trained, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "변압기는 교류 전압을 바꾼다.\n정류기는 교류를 직류로 바꾼다.\n발진기는 주기 신호를 만든다.\n"
    )
    docs, _ = search.load_corpus(corpus)
    model, folder = search.load(str(trained))
    index = search.build_index(model, folder, docs, False, tmp_path)
    hits = search.search(model, index, ["발진기 원리"], top_k=3, bm25_weight=1.0)[0]
    assert docs[hits[0][0]].text.startswith("발진기") and hits[0][1] == pytest.approx(1.0)


def test_corpus_formats(tmp_path, small_glossary):
    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"question": "PWM 주파수는?", "answer": "20 kHz 이상"}\n')
    docs, as_queries = search.load_corpus(faq)
    assert as_queries and docs[0].text == "PWM 주파수는?" and "20 kHz" in docs[0].shown
    passages = tmp_path / "p.jsonl"
    passages.write_text('{"passage_id": "a#0", "concept_id": "a", "category": "analog", "text": "본문"}\n')
    assert search.load_corpus(passages)[0][0].doc_id == "a#0"
    docs, as_queries = search.load_corpus(small_glossary)
    assert not as_queries and len(docs) == 40 and all(d.names for d in docs)
    assert len(search.load_corpus(None)[0]) == len(load_glossary(ROOT / "data" / "glossary_ko.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jsonl", "", "empty"),
        ("empty.txt", "\n# only a comment\n", "empty"),
        ("bad.jsonl", '{"question": "a", "answer": "b"}\n{"question": "c"\n', "bad.jsonl:2"),
        ("missing.jsonl", '{"question": "a", "answer": "b"}\n{"question": "c"}\n', "missing field 'answer'"),
        ("wrong.jsonl", '{"question": 3, "answer": "b"}\n', "must be str"),
        ("unknown.jsonl", '{"title": "a"}\n', "unknown corpus format"),
    ],
)
def test_bad_corpus_is_one_error_and_exit_2(tmp_path, trained, capsys, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        search.load_corpus(path)
    assert search.main(["--model_path", str(trained), "--corpus", str(path), "--query", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_side_by_side_and_unknown_model(trained, tiny_model_dir, small_glossary, tmp_path, capsys):
    argv = ["--model_path", str(trained), "--compare", str(tiny_model_dir), "--corpus", str(small_glossary),
            "--cache_dir", str(tmp_path), "--top_k", "3"]  # fmt: skip
    assert search.main([*argv, "--query", "PWM이 뭐야?", "--related", "PWM"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("base ("))
    assert "fine-tuned (model)" in header and "질의: PWM이 뭐야?" in out and "관련 용어: PWM" in out
    assert (
        sum(line.startswith(" 1. ") for line in out.splitlines()) == 2
    )  # one row holds both models' first hit
    assert search.main(["--model_path", str(tmp_path / "nope"), "--query", "x"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_queries_from_stdin(trained, small_glossary, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("PWM이 뭐야?\n\nADC 설명\n"))
    argv = ["--model_path", str(trained), "--corpus", str(small_glossary), "--cache_dir", str(tmp_path)]
    assert search.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("질의: ") == 2


def test_knn_edges_follow_the_similarities():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb @ emb.T
    edges = term_map.knn_edges(emb, k=3, min_similarity=0.2)
    for (i, j), w in edges.items():
        assert i < j and w == pytest.approx(sims[i, j]) and w >= 0.2
        top_i = np.argsort(-np.where(np.eye(30, dtype=bool), -np.inf, sims)[i])[:3]
        top_j = np.argsort(-np.where(np.eye(30, dtype=bool), -np.inf, sims)[j])[:3]
        assert j in top_i or i in top_j
    for i in range(30):  # every k-NN pair above the threshold is an edge
        for j in np.argsort(-np.where(np.eye(30, dtype=bool), -np.inf, sims)[i])[:3]:
            if sims[i, j] >= 0.2:
                assert (min(i, j), max(i, j)) in edges


@pytest.mark.slow
def test_term_map_exports_a_graph_consistent_with_the_embeddings(
    trained, tiny_model_dir, small_glossary, tmp_path
):
    out, cache = tmp_path / "map", tmp_path / "cache"
    argv = ["--model_path", str(trained), "--base_model", str(tiny_model_dir), "--glossary", str(small_glossary),
            "--output_dir", str(out), "--cache_dir", str(cache), "--neighbors", "3", "--min_similarity", "0.1"]  # fmt: skip
    assert term_map.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "graph.graphml", "graph.json", "graph.png", "projection.png", "summary.json"]  # fmt: skip
    for png in ("graph.png", "projection.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    graph = json.loads((out / "graph.json").read_text())
    docs, _ = search.load_corpus(small_glossary)
    model, folder = search.load(str(trained))
    emb = search.build_index(model, folder, docs, False, cache).embeddings  # the cached index term_map used
    position = {d.doc_id: i for i, d in enumerate(docs)}
    assert {n["id"] for n in graph["nodes"]} == set(position)
    expected = term_map.knn_edges(emb, 3, 0.1)
    found = {
        tuple(sorted((position[e["source"]], position[e["target"]]))): e["weight"] for e in graph["edges"]
    }
    assert found.keys() == expected.keys()
    assert all(found[key] == pytest.approx(w, abs=1e-5) for key, w in expected.items())
    import networkx as nx

    assert nx.read_graphml(out / "graph.graphml").number_of_edges() == len(expected)
    from sklearn.metrics import silhouette_score

    summary = json.loads((out / "summary.json").read_text())
    tuned = summary["models"][f"fine-tuned ({trained.name})"]
    categories = [d.category for d in docs]
    assert tuned["category_silhouette"] == pytest.approx(
        silhouette_score(emb, categories, metric="cosine"), abs=1e-4
    )
    same = sum(categories[i] == categories[j] for i, j in expected)
    assert tuned["edges"] == len(expected) and tuned["same_category_edge_share"] == round(
        same / len(expected), 4
    )
    assert set(summary["models"]) == {f"fine-tuned ({trained.name})", f"base ({tiny_model_dir.name})"}


def test_term_map_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "map"
    assert term_map.main(["--model_path", str(tmp_path / "missing"), "--output_dir", str(out)]) == 2
    assert not out.exists() and capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
@pytest.mark.standin
def test_faq_matching_with_the_standin(standin_dir, tmp_path, capsys):
    argv = ["--model_path", "e5-small-offline", "--corpus", str(ROOT / "data" / "faq_sample.jsonl"),
            "--cache_dir", str(tmp_path), "--top_k", "1"]  # fmt: skip
    assert search.main([*argv, "--query", "PWM 스위칭 주파수 선택 기준", "--query", "FET 발열이 심함"]) == 0
    out = capsys.readouterr().out
    assert " 1. " in out and "PWM 주파수는 어떻게 정하나요?" in out and "MOSFET이 너무 뜨거워요." in out
