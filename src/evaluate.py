"""Evaluate a fine-tuned model against its base model and BM25 on the unseen-concept test split.

Every system ranks the *whole* test corpus for each test query (every passage of every test concept);
a passage is relevant when it describes the query's concept. The report compares the systems side by
side, sliced by query style, category and acronym-vs-term queries, with a paired bootstrap confidence
interval on the nDCG@10 gain, pairwise triplet accuracy for continuity, and Spearman correlation on a
general-Korean STS file to show whether fine-tuning cost general understanding.

    uv run python -m src.evaluate --model_path outputs/bge-m3-kr --sample_size 500

The flow: 1. load test rows and corpus, sample queries  2. load the models  3. score every system
4. metrics, slices, bootstrap, STS  5. write the report folder (metrics.json, report.md, PNG charts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shlex
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src import m3
from src.base_model import ModelNotFound, resolve_model
from src.data import CATEGORIES, SYNTH_COMMAND, DataError, Passage, Triplet, atomic_path, read_jsonl

METRICS = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "map@100"]
TOP_K = 100
DISCOUNTS = 1.0 / np.log2(np.arange(2, 12))  # nDCG@10 position discounts for ranks 1..10
ACRONYM = re.compile(r"(?<![A-Za-z])[A-Z][A-Za-z0-9]*[A-Z0-9](?![a-z])")  # PWM, I2C, MOSFET, SoC, RS-485
KIWI_KEEP = ("NNG", "NNP", "SL", "SN", "SH", "XR", "VV", "VA")  # content morphemes for BM25
STS_HEADER = ["genre", "filename", "year", "id", "score", "sentence1", "sentence2"]


# ----------------------------------------------------------------------------- metrics


def rank_top_k(scores: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Indices of the k best documents per query, best first; ties go to the lower index. [n_q, k]"""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def retrieval_metrics(ranked: np.ndarray, relevant: list[set[int]]) -> dict[str, np.ndarray]:
    """Per-query Recall@1/5/10, MRR@10, nDCG@10 (binary gains) and MAP@100, each an array [n_q]."""
    out = {m: np.zeros(len(relevant)) for m in METRICS}
    for q, (docs, rel) in enumerate(zip(ranked, relevant, strict=True)):
        hits = np.array([d in rel for d in docs], dtype=float)
        for k in (1, 5, 10):
            out[f"recall@{k}"][q] = hits[:k].sum() / len(rel)
        first = np.flatnonzero(hits[:10])
        out["mrr@10"][q] = 1.0 / (first[0] + 1) if first.size else 0.0
        ideal = DISCOUNTS[: min(len(rel), 10)].sum()
        out["ndcg@10"][q] = (hits[:10] * DISCOUNTS[: len(hits[:10])]).sum() / ideal
        precision_at_hits = np.cumsum(hits[:100]) / np.arange(1, len(hits[:100]) + 1)
        out["map@100"][q] = (precision_at_hits * hits[:100]).sum() / min(len(rel), 100)
    return out


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of (a - b) over queries and its 95% percentile interval from ``n`` paired resamples."""
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


# ----------------------------------------------------------------------------- inputs


def read_sts(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Sentence pairs and gold scores (0-5) of a KorSTS-layout TSV (header, 7 tab-separated columns)."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(path, f"not valid UTF-8 (byte {e.start})") from None
    if not lines or lines[0].split("\t") != STS_HEADER:
        raise DataError(
            path, f"not the KorSTS layout: the header must be {' '.join(STS_HEADER)} (tab-separated)", 1
        )
    first, second, gold = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(STS_HEADER):
            raise DataError(
                path, f"expected {len(STS_HEADER)} tab-separated columns, got {len(fields)}", number
            )
        try:
            score = float(fields[4])
        except ValueError:
            raise DataError(path, f"column 'score' must be a number, got {fields[4]!r}", number) from None
        if not 0 <= score <= 5 or not fields[5].strip() or not fields[6].strip():
            raise DataError(path, "score must be within 0-5 and both sentences non-empty", number)
        first.append(fields[5])
        second.append(fields[6])
        gold.append(score)
    if len(gold) < 3:
        raise DataError(path, "needs at least 3 sentence pairs")
    return first, second, np.array(gold)


@dataclass
class TestSet:
    rows: list[Triplet]  # the sampled test queries
    corpus: list[Passage]
    relevant: list[set[int]]  # per query: indices into corpus of its concept's passages


def load_test_set(test_path: Path, corpus_path: Path, sample_size: int, seed: int) -> TestSet:
    """Read test rows and the corpus, check the corpus covers every test concept, sample queries (seeded)."""
    rows = read_jsonl(test_path, Triplet, made_by=SYNTH_COMMAND)
    corpus = read_jsonl(corpus_path, Passage, made_by=SYNTH_COMMAND)
    by_concept: dict[str, set[int]] = defaultdict(set)
    for i, p in enumerate(corpus):
        by_concept[p.concept_id].add(i)
    missing = sorted({r.concept_id for r in rows} - by_concept.keys())
    if missing:
        raise DataError(
            corpus_path,
            f"corpus lacks {len(missing)} test concepts ({', '.join(missing[:5])}); is it the test corpus?",
        )
    if 0 < sample_size < len(rows):
        rows = random.Random(seed).sample(rows, sample_size)
    return TestSet(rows, corpus, [by_concept[r.concept_id] for r in rows])


# ----------------------------------------------------------------------------- systems


def kiwi_tokens(texts: list[str]) -> list[list[str]]:
    """Content morphemes (nouns, foreign words, numbers, roots, verb/adjective stems), lower-cased."""
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    return [[t.form.lower() for t in kiwi.tokenize(text) if t.tag.startswith(KIWI_KEEP)] for text in texts]


def bm25_scores(queries: list[str], documents: list[str]) -> np.ndarray:
    """BM25 scores over Korean morphemes (bm25s + kiwipiepy), shape [n_queries, n_documents]."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(kiwi_tokens(documents), show_progress=False)
    vocab = retriever.vocab_dict
    scores = np.zeros((len(queries), len(documents)), dtype=np.float32)
    for i, tokens in enumerate(kiwi_tokens(queries)):
        known = [t for t in tokens if t in vocab]
        if known:
            scores[i] = retriever.get_scores(known)
    return scores


@dataclass
class DenseResult:
    scores: np.ndarray  # [n_queries, n_corpus] cosine
    triplet_pos: np.ndarray  # [n_queries] cosine(query, positive)
    triplet_neg: np.ndarray  # [n_queries] cosine(query, negative)
    sts_spearman: float | None


def dense_scores(model, test: TestSet, sts: tuple | None, batch_size: int) -> DenseResult:
    """Cosine scores of one model: queries x corpus, the rows' own positive/negative, and STS pairs."""
    from scipy.stats import spearmanr

    opts = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_numpy": True}
    queries = model.encode_query([r.query for r in test.rows], show_progress_bar=True, **opts)
    # the rows' positives and negatives are usually corpus passages: encode each distinct text once
    texts = [p.text for p in test.corpus] + [r.positive for r in test.rows] + [r.negative for r in test.rows]
    index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    passages = model.encode_document(list(index), show_progress_bar=True, **opts)
    corpus = passages[[index[p.text] for p in test.corpus]]
    pos = passages[[index[r.positive] for r in test.rows]]
    neg = passages[[index[r.negative] for r in test.rows]]
    spearman = None
    if sts:
        first, second, gold = sts
        a, b = model.encode_query(first, **opts), model.encode_query(second, **opts)
        spearman = float(spearmanr(np.sum(a * b, axis=1), gold).statistic * 100)
    return DenseResult(
        queries @ corpus.T, np.sum(queries * pos, axis=1), np.sum(queries * neg, axis=1), spearman
    )


def m3_mode_scores(path: str, test: TestSet, batch_size: int, weights: tuple[float, float, float]) -> dict:
    """An M3 model's dense, sparse, multi-vector and hybrid scores, each [n_queries, n_corpus]."""
    model = m3.load(path)
    queries = m3.encode(model, [r.query for r in test.rows], batch_size, max_length=128)
    corpus = m3.encode(model, [p.text for p in test.corpus], batch_size, max_length=512)
    return m3.mode_scores(queries, corpus, weights)


# ----------------------------------------------------------------------------- report


def query_kind(query: str) -> str:
    """'acronym' when the query contains a Latin acronym (PWM, I2C, SoC), else 'term'."""
    return "acronym" if ACRONYM.search(query) else "term"


def slice_table(test: TestSet, per_query: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, dict]]:
    """nDCG@10 per system within each slice: {"style": {value: {"n": .., system: ..}}, "category": .., "kind": ..}."""
    keys = {
        "style": [r.style for r in test.rows],
        "category": [r.category for r in test.rows],
        "kind": [query_kind(r.query) for r in test.rows],
    }
    out: dict[str, dict[str, dict]] = {}
    for slice_name, values in keys.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i, v in enumerate(values):
            groups[v].append(i)
        out[slice_name] = {
            v: {"n": len(idx), **{s: round(float(m["ndcg@10"][idx].mean()), 4) for s, m in per_query.items()}}
            for v, idx in sorted(groups.items())
        }
    return out


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_charts(folder: Path, metrics: dict) -> None:
    """metrics.png: every metric per system; styles.png: nDCG@10 per query style and system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(metrics["systems"])
    width = 0.8 / len(systems)
    for name, groups, values in [
        ("metrics.png", METRICS, lambda s, g: metrics["systems"][s][g]),
        ("styles.png", list(metrics["slices"]["style"]), lambda s, g: metrics["slices"]["style"][g][s]),
    ]:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups)), 4), dpi=120)
        x = np.arange(len(groups))
        for i, system in enumerate(systems):
            ax.bar(x + i * width - 0.4 + width / 2, [values(system, g) for g in groups], width, label=system)
        ax.set_xticks(
            x,
            groups,
            rotation=20 if name == "styles.png" else 0,
            ha="right" if name == "styles.png" else "center",
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel("nDCG@10" if name == "styles.png" else "score")
        ax.set_title(
            "nDCG@10 by query style" if name == "styles.png" else "Retrieval on unseen test concepts"
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name)
        plt.close(fig)


def markdown_report(metrics: dict) -> str:
    """The report in Korean, metric names in English."""
    systems = list(metrics["systems"])
    head = (
        "| 지표 | "
        + " | ".join(systems)
        + (" | 차이 (파인튜닝 − 기준) |" if "difference" in metrics else " |")
    )
    lines = [
        "# 검색 평가 보고서",
        "",
        f"- 평가 모델: `{metrics['model']}`",
        f"- 기준 모델: `{metrics['baseline_model']}`" if metrics["baseline_model"] else "- 기준 모델: 없음",
        f"- 테스트 질의 {metrics['data']['queries']}개, 코퍼스 문단 {metrics['data']['corpus_passages']}개 "
        f"(테스트 개념 {metrics['data']['test_concepts']}개; 학습에 쓰이지 않은 개념)",
        f"- 명령: `{metrics['command']}`",
        "",
        "## 전체 결과",
        "",
        head,
        "|" + "---|" * (len(head.split("|")) - 2),
    ]
    for m in METRICS:
        row = f"| {m} | " + " | ".join(f"{metrics['systems'][s][m]:.4f}" for s in systems)
        if "difference" in metrics:
            row += f" | {metrics['difference'][m]:+.4f}"
        lines.append(row + " |")
    if "bootstrap" in metrics:
        lines += ["", "## nDCG@10 향상의 95% 신뢰구간 (paired bootstrap)", ""]
        for versus, b in metrics["bootstrap"].items():
            verdict = (
                "유의미한 향상"
                if b["low"] > 0
                else ("유의미한 하락" if b["high"] < 0 else "잡음과 구분되지 않음")
            )
            lines.append(
                f"- 파인튜닝 − {versus}: {b['mean']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] → {verdict}"
            )
    dense = [s for s in systems if "triplet_accuracy" in metrics["systems"][s]]
    lines += ["", "## 쌍별 비교 (triplet accuracy)와 일반 한국어 유지 (STS)", "", "| 지표 | " + " | ".join(dense) + " |",
              "|" + "---|" * (len(dense) + 1)]  # fmt: skip
    for key, label in [("triplet_accuracy", "triplet accuracy"), ("mean_pos_sim", "mean positive sim"),
                       ("mean_neg_sim", "mean negative sim"), ("sts_spearman", "STS Spearman×100")]:  # fmt: skip
        cells = [metrics["systems"][s].get(key) for s in dense]
        lines.append(f"| {label} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |")
    titles = {
        "style": "질의 스타일별 nDCG@10",
        "category": "분야별 nDCG@10",
        "kind": "약어 질의 vs 용어 질의 nDCG@10",
    }
    for slice_name, title in titles.items():
        lines += [
            "",
            f"## {title}",
            "",
            "| 구분 | n | " + " | ".join(systems) + " |",
            "|" + "---|" * (len(systems) + 2),
        ]
        for value, cells in metrics["slices"][slice_name].items():
            label = (
                f"{value} ({CATEGORIES[value]})"
                if slice_name == "category" and value in CATEGORIES
                else value
            )
            lines.append(
                f"| {label} | {cells['n']} | " + " | ".join(f"{cells[s]:.4f}" for s in systems) + " |"
            )
    lines += ["", "## BGE-M3 검색 모드 (dense · sparse · multi-vector · hybrid)", ""]
    lines += [f"- {name}: {note}" for name, note in metrics.get("m3", {}).items()]
    lines += ["", "## 그림", "", "![metrics](metrics.png)", "", "![styles](styles.png)", ""]
    return "\n".join(lines)


def console_table(metrics: dict) -> str:
    systems = list(metrics["systems"])
    w = max(len(s) for s in systems) + 2
    rows = [f"{'metric':<14}" + "".join(f"{s:>{w}}" for s in systems)]
    for m in METRICS:
        rows.append(f"{m:<14}" + "".join(f"{metrics['systems'][s][m]:>{w}.4f}" for s in systems))
    sts = [metrics["systems"][s].get("sts_spearman") for s in systems]
    if any(v is not None for v in sts):
        rows.append(f"{'STS ρ×100':<14}" + "".join(f"{'-' if v is None else f'{v:.2f}':>{w}}" for v in sts))
    for versus, b in metrics.get("bootstrap", {}).items():
        rows.append(
            f"nDCG@10 gain vs {versus}: {b['mean']:+.4f} (95% CI {b['low']:+.4f} .. {b['high']:+.4f})"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    models = p.add_argument_group("models")
    models.add_argument("--model_path", default="outputs/bge-m3-kr", help="the fine-tuned model folder")
    models.add_argument(
        "--baseline_model",
        default=None,
        help="model to compare with (default: the base model in training_summary.json; 'none' to skip)",
    )
    models.add_argument("--batch_size", type=int, default=32)
    models.add_argument(
        "--m3_weights",
        type=float,
        nargs=3,
        default=list(m3.DEFAULT_WEIGHTS),
        metavar=("DENSE", "SPARSE", "COLBERT"),
        help="hybrid weights of an M3 model's modes (the BGE-M3 paper's default: 1 0.3 1)",
    )
    data = p.add_argument_group("data")
    data.add_argument("--test_data", type=Path, default=Path("data/test.jsonl"))
    data.add_argument("--corpus", type=Path, default=Path("data/corpus_test.jsonl"))
    data.add_argument("--sample_size", type=int, default=500, help="test queries to sample (0 = all)")
    data.add_argument("--sts", default="data/sts_ko_sample.tsv", help="KorSTS-layout TSV ('' to skip)")
    data.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    data.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--report_dir", type=Path, default=None, help="default: outputs/reports/<model folder name>"
    )
    args = p.parse_args(argv)
    if args.report_dir is None:
        args.report_dir = Path("outputs/reports") / Path(args.model_path).name
    return args


def baseline_of(args: argparse.Namespace) -> str | None:
    """The baseline model: the flag, else the base model recorded by src.train, else none."""
    if args.baseline_model:
        return None if args.baseline_model.lower() == "none" else args.baseline_model
    summary = Path(args.model_path) / "training_summary.json"
    return json.loads(summary.read_text(encoding="utf-8"))["base_model"] if summary.exists() else None


def evaluate(args: argparse.Namespace, argv: list[str]) -> dict:
    from sentence_transformers import SentenceTransformer

    # 1. data
    test = load_test_set(args.test_data, args.corpus, args.sample_size, args.seed)
    sts = read_sts(Path(args.sts)) if args.sts else None

    # 2. models (checked before any encoding work)
    baseline = baseline_of(args)
    if not Path(args.model_path).is_dir():
        raise ModelNotFound(
            f"{args.model_path}: model folder not found (train one with `python -m src.train`)"
        )
    paths = {f"fine-tuned ({Path(args.model_path).name})": resolve_model(args.model_path)}
    if baseline:
        paths[f"base ({baseline})"] = resolve_model(baseline)

    # 3. score every system (M3 models add their sparse, multi-vector and hybrid modes)
    per_query, systems, m3_notes = {}, {}, {}
    relevant = test.relevant
    for name, path in paths.items():
        print(f"Encoding with {name} ...", file=sys.stderr)
        result = dense_scores(SentenceTransformer(path), test, sts, args.batch_size)
        per_query[name] = retrieval_metrics(rank_top_k(result.scores), relevant)
        systems[name] = {
            "triplet_accuracy": float(np.mean(result.triplet_pos > result.triplet_neg)),
            "mean_pos_sim": float(result.triplet_pos.mean()),
            "mean_neg_sim": float(result.triplet_neg.mean()),
            "sts_spearman": result.sts_spearman,
        }
        if not m3.is_m3(path):
            m3_notes[name] = "dense only (no sparse_linear.pt / colbert_linear.pt): M3 modes not available"
            continue
        m3_notes[name] = f"M3 modes evaluated; hybrid weights dense/sparse/colbert = {list(args.m3_weights)}"
        for mode, scores in m3_mode_scores(path, test, args.batch_size, tuple(args.m3_weights)).items():
            if mode != "dense":  # the dense mode is the sentence-transformers system above
                per_query[f"{name} {mode}"] = retrieval_metrics(rank_top_k(scores), relevant)
                systems[f"{name} {mode}"] = {}
    bm25 = bm25_scores([r.query for r in test.rows], [p.text for p in test.corpus])
    per_query["BM25 (kiwi)"] = retrieval_metrics(rank_top_k(bm25), relevant)
    systems["BM25 (kiwi)"] = {}

    # 4. metrics, differences, bootstrap, slices
    for name, values in per_query.items():
        systems[name] = {**{m: round(float(v.mean()), 4) for m, v in values.items()}, **systems[name]}
    names = list(per_query)
    tuned, base_name = list(paths)[0], (list(paths)[1] if baseline else None)
    others = [n for n in names if n != tuned]
    metrics = {
        "command": "python -m src.evaluate " + shlex.join(argv),
        "model": args.model_path,
        "baseline_model": baseline,
        "data": {
            "test_file": str(args.test_data),
            "test_sha256": file_sha256(args.test_data),
            "corpus_file": str(args.corpus),
            "corpus_sha256": file_sha256(args.corpus),
            "sts_file": args.sts or None,
            "sts_sha256": file_sha256(Path(args.sts)) if args.sts else None,
            "queries": len(test.rows),
            "corpus_passages": len(test.corpus),
            "test_concepts": len({r.concept_id for r in test.rows}),
            "seed": args.seed,
        },
        "roles": {"fine_tuned": tuned, "baseline": base_name, "bm25": names[-1]},
        "m3": m3_notes,
        "systems": systems,
        "slices": slice_table(test, per_query),
    }
    if baseline:
        metrics["difference"] = {m: round(systems[tuned][m] - systems[base_name][m], 4) for m in METRICS}
    metrics["bootstrap"] = {}
    for other in others:
        mean, low, high = paired_bootstrap(
            per_query[tuned]["ndcg@10"], per_query[other]["ndcg@10"], args.bootstrap, args.seed
        )
        metrics["bootstrap"][other] = {"mean": round(mean, 4), "low": round(low, 4), "high": round(high, 4)}

    # 5. report folder, atomically
    with atomic_path(args.report_dir, is_dir=True) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
        (tmp / "report.md").write_text(markdown_report(metrics), encoding="utf-8")
        write_charts(tmp, metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        metrics = evaluate(args, argv)
    except (DataError, ModelNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(console_table(metrics))
    print(f"Report: {args.report_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
