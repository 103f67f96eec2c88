"""Evaluate a fine-tuned model against its base model and BM25, first on text our templates never wrote.

Independent evaluation sets lead (``data/eval/``, written outside ``src.synth_data`` and the glossary):
(a) glossary concepts explained in other registers and queried as people type, (b) the same for concepts
outside the glossary, (c) Korean-English term pairs in both directions. Each set is split once by concept
into a ``dev`` part (choose recipes and defaults on it) and a ``test`` part (report only); ``--eval_part``
picks the part. Then the synthetic test split: unseen concepts, but worded by our own templates.

Every system ranks a task's whole document list for each query; a document is relevant when it belongs
to the query's concept. The report compares the systems side by side with a paired bootstrap confidence
interval on the gain (resampling concepts, since one concept's queries are not independent), slices by
query style, register, category and more, pairwise triplet accuracy on the synthetic split, and Spearman
correlation on a general-Korean STS file to show whether fine-tuning cost general understanding.

    uv run python -m src.evaluate --model outputs/bge-m3-kr --sample_size 500

The flow: 1. load the tasks (independent sets, synthetic split) and STS  2. load the models  3. score
every system on every task  4. metrics, slices, bootstrap  5. write the report folder (metrics.json,
report.md, PNG charts).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import shlex
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src import cli, m3
from src.base_model import load_encoder, resolve_model
from src.data import (
    EVAL_QUERY_STYLES,
    EVAL_SPLITS,
    SYNTH_COMMAND,
    DataError,
    EvalConcept,
    Passage,
    TermPair,
    Triplet,
    atomic_path,
    file_digest,
    load_eval_concepts,
    load_term_pairs,
    read_jsonl,
)
from src.domain import default_domain

METRICS = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "map@100"]
TOP_K = 100
DISCOUNTS = 1.0 / np.log2(np.arange(2, 12))  # nDCG@10 position discounts for ranks 1..10
ACRONYM = re.compile(r"(?<![A-Za-z])[A-Z][A-Za-z0-9]*[A-Z0-9](?![a-z])")  # PWM, I2C, MOSFET, SoC, RS-485
KIWI_KEEP = ("NNG", "NNP", "SL", "SN", "SH", "XR", "VV", "VA")  # content morphemes for BM25
STS_HEADER = ["genre", "filename", "year", "id", "score", "sentence1", "sentence2"]
CONCEPT_SETS = {  # independent sets of concepts: key -> (file in --eval_dir, title)
    "a": ("seen_wording.jsonl", "(a) seen concepts, new wording"),
    "b": ("unseen_concepts.jsonl", "(b) outside the glossary"),
}
PAIRS_FILE = "term_pairs.jsonl"  # (c), evaluated in both directions
SYNTHETIC = "synthetic"
CHART_LABELS = {"a": "(a) seen, new wording", "b": "(b) outside glossary", "c_ko_en": "(c) ko→en",
                "c_en_ko": "(c) en→ko", SYNTHETIC: "synthetic split"}  # fmt: skip


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
    a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0, groups: list[str] | None = None
) -> tuple[float, float, float]:
    """Mean of (a - b) over queries and its 95% percentile interval from ``n`` paired resamples.

    With ``groups`` (one label per query, e.g. its concept) whole groups are resampled: queries about one
    concept are correlated, so resampling them one by one would make the interval too narrow."""
    diff = a - b
    rng = np.random.default_rng(seed)
    if groups is None:
        means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    else:
        labels, inverse = np.unique(groups, return_inverse=True)
        sums, sizes = np.bincount(inverse, weights=diff), np.bincount(inverse)
        picks = rng.integers(0, len(labels), size=(n, len(labels)))
        means = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def label_recall(
    ranked: np.ndarray, relevant: list[set[int]], labels: list[str], k: int = 10
) -> dict[str, tuple[int, float]]:
    """Per document label (e.g. register): (number of query-document pairs, share of them in the top k)
    over every relevant document carrying that label."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for docs, rel in zip(ranked, relevant, strict=True):
        top = set(docs[:k].tolist())
        for d in rel:
            hits[labels[d]].append(d in top)
    return {label: (len(v), float(np.mean(v))) for label, v in sorted(hits.items())}


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


@dataclass
class Task:
    """One retrieval task: each query ranks every document; ``relevant`` holds, per query, the indices of
    its concept's documents. ``concepts`` labels each query's concept (the bootstrap resamples them);
    ``query_slices`` and ``document_slices`` map a slice name to one label per query / per document."""

    key: str
    title: str
    metric: str  # the headline metric of the task
    queries: list[str]
    documents: list[str]
    relevant: list[set[int]]
    concepts: list[str]
    query_slices: dict[str, list[str]]
    document_slices: dict[str, list[str]]


def synthetic_task(test: TestSet) -> Task:
    """The synthetic test split as a task: sampled test queries over the whole test corpus."""
    return Task(
        SYNTHETIC,
        "synthetic test split (our templates)",
        "ndcg@10",
        [r.query for r in test.rows],
        [p.text for p in test.corpus],
        test.relevant,
        [r.concept_id for r in test.rows],
        {
            "style": [r.style for r in test.rows],
            "category": [r.category for r in test.rows],
            "kind": [query_kind(r.query) for r in test.rows],
        },
        {},
    )


def concept_task(key: str, title: str, concepts: list[EvalConcept], part: str, held_out: set[str]) -> Task:
    """The ``part`` concepts' queries over the passages of the same concepts (each part stands alone).

    held_out: ids of the synthetic test split's concepts; set (a) is sliced by whether training saw them."""
    concepts = [c for c in concepts if c.split == part]
    documents, registers, owner = [], [], []
    for c in concepts:
        for register, text in c.passages.items():
            documents.append(text)
            registers.append(register)
            owner.append(c.concept_id)
    by_concept: dict[str, set[int]] = defaultdict(set)
    for i, concept_id in enumerate(owner):
        by_concept[concept_id].add(i)
    asked = [(c, q) for c in concepts for q in c.queries]
    slices = {"style": [q.style for _, q in asked], "category": [c.category for c, _ in asked]}
    if key == "a":
        slices["synthetic_split"] = ["test" if c.concept_id in held_out else "train" for c, _ in asked]
    return Task(
        key,
        title,
        "ndcg@10",
        [q.text for _, q in asked],
        documents,
        [by_concept[c.concept_id] for c, _ in asked],
        [c.concept_id for c, _ in asked],
        slices,
        {"register": registers},
    )


def pair_tasks(pairs: list[TermPair], part: str) -> list[Task]:
    """Set (c) both ways: each ``part`` pair's Korean term ranks the part's English terms, and back."""
    pairs = [p for p in pairs if p.split == part]
    slices = {
        "glossary": ["in glossary" if p.in_glossary else "outside" for p in pairs],
        "category": [p.category for p in pairs],
    }
    return [
        Task(
            key,
            f"(c) term pairs {arrow}",
            "mrr@10",
            [getattr(p, source) for p in pairs],
            [getattr(p, target) for p in pairs],
            [{i} for i in range(len(pairs))],
            [p.en for p in pairs],
            slices,
            {},
        )
        for key, arrow, source, target in (("c_ko_en", "ko→en", "ko", "en"), ("c_en_ko", "en→ko", "en", "ko"))
    ]


def independent_tasks(eval_dir: Path, part: str, held_out: set[str]) -> list[Task]:
    """Every independent set found in ``eval_dir`` (at least one must be there), in the order (a), (b), (c)."""
    tasks = []
    for key, (name, title) in CONCEPT_SETS.items():
        if (eval_dir / name).exists():
            tasks.append(concept_task(key, title, load_eval_concepts(eval_dir / name), part, held_out))
    if (eval_dir / PAIRS_FILE).exists():
        tasks += pair_tasks(load_term_pairs(eval_dir / PAIRS_FILE), part)
    if not tasks:
        files = ", ".join([name for name, _ in CONCEPT_SETS.values()] + [PAIRS_FILE])
        raise DataError(eval_dir, f"no independent evaluation set here (expected one of {files}; '' to skip)")
    empty = [t.title for t in tasks if not t.queries]
    if empty:
        raise DataError(eval_dir, f"no {part} queries in {', '.join(empty)}")
    return tasks


# ----------------------------------------------------------------------------- systems


@functools.cache
def kiwi():
    """One Kiwi morphological analyser per process (building one takes about a second)."""
    from kiwipiepy import Kiwi

    return Kiwi()


def kiwi_tokens(texts: list[str]) -> list[list[str]]:
    """Content morphemes (nouns, foreign words, numbers, roots, verb/adjective stems), lower-cased. The texts go
    to Kiwi as one batch, which it analyses on all cores (the same tokens, 2x faster than one by one on 2)."""
    analysed = kiwi().tokenize(texts)
    return [[t.form.lower() for t in tokens if t.tag.startswith(KIWI_KEEP)] for tokens in analysed]


def bm25_scores(queries: list[str], documents: list[str]) -> np.ndarray:
    """BM25 scores over Korean morphemes (bm25s + kiwipiepy), shape [n_queries, n_documents]."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
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
    scores: dict[str, np.ndarray]  # task key -> [n_queries, n_documents] cosine
    triplet_pos: np.ndarray  # [n_rows] cosine(query, positive) of the synthetic test rows
    triplet_neg: np.ndarray  # [n_rows] cosine(query, negative)
    sts_spearman: float | None


def encode_unique(encode, texts: list[str], batch_size: int) -> tuple[np.ndarray, dict[str, int]]:
    """Encode each distinct text once: (unit vectors [n_distinct, dim], text -> row)."""
    index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    opts = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_numpy": True}
    return encode(list(index), show_progress_bar=True, **opts), index


def dense_scores(
    model, tasks: list[Task], rows: list[Triplet], sts: tuple | None, batch_size: int
) -> DenseResult:
    """Cosine scores of one model on every task, the synthetic rows' own positive/negative, and STS pairs.

    Queries get the model's query prompt, documents its document prompt; every distinct text is encoded
    once (the tasks share passages, and the rows' positives and negatives are usually corpus passages)."""
    from scipy.stats import spearmanr

    queries, qi = encode_unique(
        model.encode_query, [q for t in tasks for q in t.queries] + [r.query for r in rows], batch_size
    )
    docs, di = encode_unique(
        model.encode_document,
        [d for t in tasks for d in t.documents] + [r.positive for r in rows] + [r.negative for r in rows],
        batch_size,
    )
    scores = {
        t.key: queries[[qi[q] for q in t.queries]] @ docs[[di[d] for d in t.documents]].T for t in tasks
    }
    row_queries = queries[[qi[r.query] for r in rows]]
    pos = np.sum(row_queries * docs[[di[r.positive] for r in rows]], axis=1)
    neg = np.sum(row_queries * docs[[di[r.negative] for r in rows]], axis=1)
    spearman = None
    if sts:
        first, second, gold = sts
        opts = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_numpy": True}
        a, b = model.encode_query(first, **opts), model.encode_query(second, **opts)
        spearman = float(spearmanr(np.sum(a * b, axis=1), gold).statistic * 100)
    return DenseResult(scores, pos, neg, spearman)


def m3_mode_scores(model, task: Task, batch_size: int, weights: tuple[float, float, float]) -> dict:
    """An M3 model's dense, sparse, multi-vector and hybrid scores on one task, each [n_queries, n_documents]."""
    queries = m3.encode(model, task.queries, batch_size, max_length=128)
    documents = m3.encode(model, task.documents, batch_size, max_length=512)
    return m3.mode_scores(queries, documents, weights)


def task_results(task: Task, ranked: dict[str, np.ndarray], tuned: str, n_boot: int, seed: int) -> dict:
    """One task's metrics per system, the bootstrap of the fine-tuned model's gain on the headline metric
    against every other system, and the slices (query slices: headline metric; document slices: recall@10)."""
    per_query = {s: retrieval_metrics(r, task.relevant) for s, r in ranked.items()}
    bootstrap = {}
    for other in per_query:
        if other != tuned:
            a, b = per_query[tuned][task.metric], per_query[other][task.metric]
            mean, low, high = paired_bootstrap(a, b, n_boot, seed, task.concepts)
            bootstrap[other] = {"mean": round(mean, 4), "low": round(low, 4), "high": round(high, 4)}
    slices: dict[str, dict[str, dict]] = {}
    for name, labels in task.query_slices.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            groups[label].append(i)
        slices[name] = {
            label: {
                "n": len(idx),
                **{s: round(float(m[task.metric][idx].mean()), 4) for s, m in per_query.items()},
            }
            for label, idx in sorted(groups.items())
        }
    for name, labels in task.document_slices.items():
        recall = {s: label_recall(r, task.relevant, labels) for s, r in ranked.items()}
        counts = recall[tuned]
        slices[name] = {
            label: {"n": n, **{s: round(recall[s][label][1], 4) for s in ranked}}
            for label, (n, _) in counts.items()
        }
    return {
        "title": task.title,
        "metric": task.metric,
        "data": {
            "queries": len(task.queries),
            "documents": len(task.documents),
            "concepts": len(set(task.concepts)),
        },
        "systems": {s: {m: round(float(v.mean()), 4) for m, v in m.items()} for s, m in per_query.items()},
        "bootstrap": bootstrap,
        "slices": slices,
    }


# ----------------------------------------------------------------------------- report


def query_kind(query: str) -> str:
    """'acronym' when the query contains a Latin acronym (PWM, I2C, SoC), else 'term'."""
    return "acronym" if ACRONYM.search(query) else "term"


def write_charts(folder: Path, metrics: dict) -> None:
    """metrics.png: every metric per system (synthetic split); styles.png: nDCG@10 per query style;
    independent.png: each independent set's headline metric per system, beside the synthetic split's."""
    from src.plots import korean_pyplot

    plt = korean_pyplot()
    systems = list(metrics["systems"])
    width = 0.8 / len(systems)
    tasks = {
        **metrics.get("independent", {}).get("tasks", {}),
        SYNTHETIC: {"systems": metrics["systems"], "metric": "ndcg@10"},
    }
    charts = [
        ("metrics.png", "Retrieval on unseen test concepts (synthetic split)", "score", METRICS, lambda s, g: metrics["systems"][s][g]),
        ("styles.png", "nDCG@10 by query style (synthetic split)", "nDCG@10", list(metrics["slices"]["style"]), lambda s, g: metrics["slices"]["style"][g][s]),
        ("independent.png", "Independent sets (" + metrics.get("independent", {}).get("part", "-") + " part) and the synthetic split", "nDCG@10 (a, b, synthetic) / MRR@10 (c)", list(tasks), lambda s, g: tasks[g]["systems"][s][tasks[g]["metric"]]),
    ]  # fmt: skip
    for name, title, ylabel, groups, values in charts:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups)), 4), dpi=120)
        x = np.arange(len(groups))
        for i, system in enumerate(systems):
            ax.bar(x + i * width - 0.4 + width / 2, [values(system, g) for g in groups], width, label=system)
        tilted = name != "metrics.png"
        ax.set_xticks(
            x,
            [CHART_LABELS.get(g, g.replace("_", " ")) for g in groups],
            rotation=20 if tilted else 0,
            ha="right" if tilted else "center",
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name)
        plt.close(fig)


def slice_titles() -> dict[str, tuple[str, dict[str, str]]]:
    """Slice name -> (Korean title, labels of its values); categories and registers are the default
    domain's (a category of another domain is shown by its key)."""
    domain = default_domain()
    return {
        "style": ("질의 스타일별", EVAL_QUERY_STYLES),
        "register": (
            "문단 레지스터별 recall@10 (그 레지스터의 정답 문단이 상위 10위 안에 든 비율)",
            domain.registers,
        ),
        "category": ("분야별", domain.categories),
        "synthetic_split": ("합성 분할별 (train = 학습에 쓰인 개념, test = 합성 테스트 개념)", {}),
        "glossary": ("용어집 포함 여부별", {}),
        "kind": ("약어 질의 vs 용어 질의", {}),
    }


def verdict(b: dict) -> str:
    return "유의미한 향상" if b["low"] > 0 else ("유의미한 하락" if b["high"] < 0 else "잡음과 구분되지 않음")


def headline_rows(metrics: dict) -> list[tuple[str, str, int, list[float | None], dict | None]]:
    """(title, metric, queries, [fine-tuned, base, BM25] values, bootstrap vs base) per task, independent sets first."""
    roles = metrics["roles"]
    systems = [roles["fine_tuned"], roles["baseline"], roles["bm25"]]
    tasks = dict(metrics.get("independent", {}).get("tasks", {}))
    tasks[SYNTHETIC] = {
        "title": "synthetic test split (our templates)",
        "metric": "ndcg@10",
        "data": {"queries": metrics["data"]["queries"]},
        "systems": metrics["systems"],
        "bootstrap": metrics.get("bootstrap", {}),
    }
    return [
        (
            t["title"],
            t["metric"],
            t["data"]["queries"],
            [t["systems"][s][t["metric"]] if s else None for s in systems],
            t["bootstrap"].get(roles["baseline"]) if roles["baseline"] else None,
        )
        for t in tasks.values()
    ]


def slice_lines(title: str, table: dict[str, dict], systems: list[str], labels: dict[str, str]) -> list[str]:
    lines = [
        "",
        f"#### {title}",
        "",
        "| 구분 | n | " + " | ".join(systems) + " |",
        "|" + "---|" * (len(systems) + 2),
    ]
    for value, cells in table.items():
        label = f"{value} ({labels[value]})" if value in labels else value
        lines.append(f"| {label} | {cells['n']} | " + " | ".join(f"{cells[s]:.4f}" for s in systems) + " |")
    return lines


def markdown_report(metrics: dict) -> str:
    """The report in Korean, metric names in English: the independent sets first, then the synthetic split."""
    systems = list(metrics["systems"])
    lines = [
        "# 검색 평가 보고서",
        "",
        f"- 평가 모델: `{metrics['model']}`",
        f"- 기준 모델: `{metrics['baseline_model']}`" if metrics["baseline_model"] else "- 기준 모델: 없음",
        f"- 명령: `{metrics['command']}`",
    ]
    independent = metrics.get("independent")
    if independent:
        lines += [
            "",
            f"## 독립 평가 세트 ({independent['part']} 부분): 우리 템플릿과 용어집이 쓰지 않은 글",
            "",
            "합성 테스트 분할은 학습 데이터와 같은 템플릿·용어집으로 쓰였으므로, 그 점수만으로는 실제 문서에서 나아졌는지 알 수 없습니다. "
            "아래 세트는 `src.synth_data` 밖에서 쓴 글이며, 개념 단위로 dev(레시피 선택용)와 test(보고 전용)로 한 번 나뉘어 있습니다. "
            "95% 신뢰구간은 개념을 다시 뽑는 paired bootstrap입니다.",
            "",
            "| 세트 | 지표 | 질의 | 파인튜닝 | 기준 | BM25 | 기준 대비 향상 (95% CI) |",
            "|---|---|---|---|---|---|---|",
        ]
        for title, metric, n, values, b in headline_rows(metrics):
            cells = " | ".join("-" if v is None else f"{v:.4f}" for v in values)
            gain = f"{b['mean']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] {verdict(b)}" if b else "-"
            lines.append(f"| {title} | {metric} | {n} | {cells} | {gain} |")
        for task in independent["tasks"].values():
            names = list(task["systems"])
            d = task["data"]
            lines += ["", f"### {task['title']}", "", f"질의 {d['queries']}개, 문서 {d['documents']}개, 개념 {d['concepts']}개.", "",
                      "| 지표 | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]  # fmt: skip
            for m in METRICS:
                lines.append(f"| {m} | " + " | ".join(f"{task['systems'][s][m]:.4f}" for s in names) + " |")
            lines.append("")
            for versus, b in task["bootstrap"].items():
                lines.append(
                    f"- {task['metric']} 향상, 파인튜닝 − {versus}: {b['mean']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] → {verdict(b)}"
                )
            for slice_name, table in task["slices"].items():
                title, labels = slice_titles()[slice_name]
                metric = "" if slice_name == "register" else f" {task['metric']}"
                lines += slice_lines(title + metric, table, names, labels)
    head = (
        "| 지표 | "
        + " | ".join(systems)
        + (" | 차이 (파인튜닝 − 기준) |" if "difference" in metrics else " |")
    )
    lines += [
        "",
        "## 합성 테스트 분할 (우리 템플릿)",
        "",
        f"- 테스트 질의 {metrics['data']['queries']}개, 코퍼스 문단 {metrics['data']['corpus_passages']}개 "
        f"(테스트 개념 {metrics['data']['test_concepts']}개; 학습에 쓰이지 않은 개념)",
        "",
        head,
        "|" + "---|" * (len(head.split("|")) - 2),
    ]
    for m in METRICS:
        row = f"| {m} | " + " | ".join(f"{metrics['systems'][s][m]:.4f}" for s in systems)
        if "difference" in metrics:
            row += f" | {metrics['difference'][m]:+.4f}"
        lines.append(row + " |")
    if metrics.get("bootstrap"):
        lines += ["", "### nDCG@10 향상의 95% 신뢰구간 (paired bootstrap, 개념 단위)", ""]
        for versus, b in metrics["bootstrap"].items():
            lines.append(
                f"- 파인튜닝 − {versus}: {b['mean']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] → {verdict(b)}"
            )
    dense = [s for s in systems if "triplet_accuracy" in metrics["systems"][s]]
    lines += ["", "### 쌍별 비교 (triplet accuracy)와 일반 한국어 유지 (STS)", "", "| 지표 | " + " | ".join(dense) + " |",
              "|" + "---|" * (len(dense) + 1)]  # fmt: skip
    for key, label in [("triplet_accuracy", "triplet accuracy"), ("mean_pos_sim", "mean positive sim"),
                       ("mean_neg_sim", "mean negative sim"), ("sts_spearman", "STS Spearman×100")]:  # fmt: skip
        cells = [metrics["systems"][s].get(key) for s in dense]
        lines.append(f"| {label} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |")
    for slice_name, table in metrics["slices"].items():
        title, labels = slice_titles()[slice_name]
        lines += slice_lines(f"{title} nDCG@10", table, systems, labels if slice_name == "category" else {})
    lines += ["", "## BGE-M3 검색 모드 (dense · sparse · multi-vector · hybrid)", ""]
    lines += [f"- {name}: {note}" for name, note in metrics.get("m3", {}).items()]
    lines += ["", "## 그림", ""]
    lines += ["![independent](independent.png)", ""] if independent else []
    lines += ["![metrics](metrics.png)", "", "![styles](styles.png)", ""]
    return "\n".join(lines)


def lead_table(metrics: dict) -> str:
    """The headline of every task side by side: fine-tuned, base and BM25, and the gain over base with its
    95% CI; the independent sets first, then the synthetic split and STS."""
    part = metrics.get("independent", {}).get("part")
    title = (
        f"Independent sets ({part} part: text our templates never wrote) and the synthetic split"
        if part
        else "Synthetic split"
    )
    rows = [
        title,
        f"{'set':<38}{'metric':<9}{'queries':>8}{'fine-tuned':>12}{'base':>9}{'BM25':>9}  gain vs base (95% CI, concepts resampled)",
    ]
    for name, metric, n, values, b in headline_rows(metrics):
        cells = "".join(
            f"{'-' if v is None else f'{v:.4f}':>{w}}" for v, w in zip(values, (12, 9, 9), strict=True)
        )
        gain = f"  {b['mean']:+.4f} ({b['low']:+.4f} .. {b['high']:+.4f})" if b else ""
        rows.append(f"{name:<38}{metric.replace('ndcg', 'nDCG').replace('mrr', 'MRR'):<9}{n:>8}{cells}{gain}")
    roles = metrics["roles"]
    sts = [
        metrics["systems"][s].get("sts_spearman") if s else None
        for s in (roles["fine_tuned"], roles["baseline"])
    ]
    if sts[0] is not None:
        rows.append(
            f"{'STS (general Korean)':<38}{'ρ×100':<9}{'':>8}"
            + "".join(f"{'-' if v is None else f'{v:.2f}':>{w}}" for v, w in zip(sts, (12, 9), strict=True))
        )
    rows.append("; ".join(f"{label} = {s}" for label, s in zip(("fine-tuned", "base", "BM25"), (roles["fine_tuned"], roles["baseline"], roles["bm25"]), strict=True) if s))  # fmt: skip
    return "\n".join(rows)


def console_table(metrics: dict) -> str:
    """The synthetic split's full table (every metric per system) and its gains' CIs."""
    systems = list(metrics["systems"])
    w = max(len(s) for s in systems) + 2
    rows = [f"{'synthetic':<14}" + "".join(f"{s:>{w}}" for s in systems)]
    for m in METRICS:
        rows.append(f"{m:<14}" + "".join(f"{metrics['systems'][s][m]:>{w}.4f}" for s in systems))
    for versus, b in metrics.get("bootstrap", {}).items():
        rows.append(
            f"nDCG@10 gain vs {versus}: {b['mean']:+.4f} (95% CI {b['low']:+.4f} .. {b['high']:+.4f})"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- main


@dataclass(frozen=True)
class EvalConfig:
    """Every flag of the stage, parsed once (``parse_args``)."""

    model: str
    base_model: str | None  # None: the base recorded in training_summary.json; "none": no baseline
    backend: str  # how --model runs: torch, onnx or onnx-int8 (the baseline always runs on PyTorch)
    batch_size: int
    m3_weights: tuple[float, float, float]
    test_data: Path
    corpus: Path
    sample_size: int
    sts: Path | None
    eval_dir: Path | None
    eval_part: str
    bootstrap: int
    seed: int
    output_dir: Path


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    models = p.add_argument_group("models")
    models.add_argument("--model", type=cli.model_name, default="outputs/bge-m3-kr",
                        help="the fine-tuned model: folder, Hub id or e5-small-offline")  # fmt: skip
    models.add_argument("--base_model", type=cli.model_name, default=None,
                        help="model to compare with (default: the base model in training_summary.json; 'none' to skip)")  # fmt: skip
    cli.add_backend(models)
    models.add_argument("--batch_size", type=cli.positive_int, default=32)
    models.add_argument("--m3_weights", type=cli.number(float, 0), nargs=3, default=list(m3.DEFAULT_WEIGHTS),
                        metavar=("DENSE", "SPARSE", "COLBERT"),
                        help="hybrid weights of an M3 model's modes, not all 0 (the BGE-M3 paper's default: 1 0.3 1)")  # fmt: skip
    data = p.add_argument_group("data")
    data.add_argument("--test_data", type=cli.input_file, default="data/test.jsonl")
    data.add_argument("--corpus", type=cli.input_file, default="data/corpus_test.jsonl")
    data.add_argument(
        "--sample_size", type=cli.non_negative_int, default=500, help="test queries to sample (0 = all)"
    )
    data.add_argument("--sts", type=cli.optional_input_file, default="data/sts_ko_sample.tsv",
                      help="KorSTS-layout TSV ('' to skip)")  # fmt: skip
    data.add_argument("--eval_dir", type=cli.optional_input_dir, default="data/eval",
                      help="folder of the independent evaluation sets ('' to skip)")  # fmt: skip
    data.add_argument("--eval_part", choices=EVAL_SPLITS, default="test",
                      help="part of the independent sets to evaluate: dev (to choose recipes on) or test (to report)")  # fmt: skip
    data.add_argument("--bootstrap", type=cli.number(int, 100), default=1000,
                      help="paired bootstrap resamples (at least 100)")  # fmt: skip
    data.add_argument("--seed", type=int, default=42)
    p.add_argument("--output_dir", type=cli.output_path, default=None,
                   help="report folder (default: outputs/reports/<model folder name>)")  # fmt: skip
    return p


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    args = build_parser().parse_args(argv)
    if not any(args.m3_weights):
        raise cli.UsageError("--m3_weights: at least one weight must be above 0")
    if args.model.lower() == "none":
        raise cli.UsageError("--model: give the model to evaluate")
    args.output_dir = args.output_dir or Path("outputs/reports") / Path(args.model).name
    args.m3_weights = tuple(args.m3_weights)
    return EvalConfig(**vars(args))


def baseline_of(config: EvalConfig) -> str | None:
    """The baseline model: the flag, else the base model recorded by src.train, else none."""
    if config.base_model:
        return None if config.base_model.lower() == "none" else config.base_model
    summary = Path(config.model) / "training_summary.json"
    if not summary.is_file():
        return None
    try:
        base = json.loads(summary.read_text(encoding="utf-8")).get("base_model")
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise DataError(summary, f"not a training summary ({type(e).__name__}); pass --base_model") from None
    if not isinstance(base, str) or not base:
        raise DataError(summary, "field 'base_model' is missing or not a text; pass --base_model")
    return base


def evaluate(config: EvalConfig, argv: list[str]) -> dict:
    """Score the model, its base and BM25 on every task; write the report folder; returns metrics.json."""
    # 1. tasks: the independent sets (their --eval_part), then the synthetic split; STS pairs
    test = load_test_set(config.test_data, config.corpus, config.sample_size, config.seed)
    held_out = {p.concept_id for p in test.corpus}
    independent = independent_tasks(config.eval_dir, config.eval_part, held_out) if config.eval_dir else []
    tasks = [*independent, synthetic_task(test)]
    sts = read_sts(config.sts) if config.sts else None

    # 2. models (checked before any encoding work)
    baseline = baseline_of(config)
    tuned = f"fine-tuned ({Path(config.model).name})" + (
        f" [{config.backend}]" if config.backend != "torch" else ""
    )
    paths, backends = {tuned: resolve_model(config.model)}, {tuned: config.backend}
    if baseline:
        paths[f"base ({baseline})"] = resolve_model(baseline)
        backends[f"base ({baseline})"] = "torch"
    for path in paths.values():
        m3.require_flagembedding(path)

    # 3. rank every task's documents with every system (M3 models add sparse, multi-vector and hybrid)
    ranked: dict[str, dict[str, np.ndarray]] = {t.key: {} for t in tasks}
    extras, m3_notes = {}, {}
    for name, path in paths.items():
        print(f"Encoding with {name} ...", file=sys.stderr)
        encoder = load_encoder(path, backends[name])
        result = dense_scores(encoder, tasks, test.rows, sts, config.batch_size)
        for t in tasks:
            ranked[t.key][name] = rank_top_k(result.scores[t.key])
        extras[name] = {
            "triplet_accuracy": float(np.mean(result.triplet_pos > result.triplet_neg)),
            "mean_pos_sim": float(result.triplet_pos.mean()),
            "mean_neg_sim": float(result.triplet_neg.mean()),
            "sts_spearman": result.sts_spearman,
        }
        if not m3.is_m3(path):
            m3_notes[name] = "dense only (no sparse_linear.pt / colbert_linear.pt): M3 modes not available"
            continue
        m3_notes[name] = (
            f"M3 modes evaluated; hybrid weights dense/sparse/colbert = {list(config.m3_weights)}"
        )
        model = m3.load(path) if backends[name] == "torch" else encoder  # the ONNX encoder has the M3 heads
        for t in tasks:
            for mode, scores in m3_mode_scores(model, t, config.batch_size, config.m3_weights).items():
                if mode != "dense":  # the dense mode is the sentence-transformers system above
                    ranked[t.key][f"{name} {mode}"] = rank_top_k(scores)
                    extras[f"{name} {mode}"] = {}
    for t in tasks:
        ranked[t.key]["BM25 (kiwi)"] = rank_top_k(bm25_scores(t.queries, t.documents))
    extras["BM25 (kiwi)"] = {}

    # 4. metrics, bootstrap and slices per task; the synthetic split keeps its top-level layout
    tuned, base_name = list(paths)[0], (list(paths)[1] if baseline else None)
    results = {t.key: task_results(t, ranked[t.key], tuned, config.bootstrap, config.seed) for t in tasks}
    synthetic = results.pop(SYNTHETIC)
    systems = {name: {**values, **extras[name]} for name, values in synthetic["systems"].items()}
    metrics = {
        "command": "python -m src.evaluate " + shlex.join(argv),
        "model": config.model,
        "backend": config.backend,
        "baseline_model": baseline,
        "data": {
            "test_file": str(config.test_data),
            "test_sha256": file_digest(config.test_data),
            "corpus_file": str(config.corpus),
            "corpus_sha256": file_digest(config.corpus),
            "sts_file": str(config.sts) if config.sts else None,
            "sts_sha256": file_digest(config.sts) if config.sts else None,
            "queries": len(test.rows),
            "corpus_passages": len(test.corpus),
            "test_concepts": len({r.concept_id for r in test.rows}),
            "seed": config.seed,
        },
        "roles": {"fine_tuned": tuned, "baseline": base_name, "bm25": "BM25 (kiwi)"},
        "m3": m3_notes,
        "systems": systems,
        "slices": synthetic["slices"],
        "bootstrap": synthetic["bootstrap"],
    }
    if baseline:
        metrics["difference"] = {m: round(systems[tuned][m] - systems[base_name][m], 4) for m in METRICS}
    if independent:
        files = sorted(config.eval_dir.glob("*.jsonl"))
        metrics["independent"] = {
            "part": config.eval_part,
            "eval_dir": str(config.eval_dir),
            "files_sha256": {f.name: file_digest(f) for f in files},
            "tasks": results,
        }

    # 5. report folder, atomically
    with atomic_path(config.output_dir, is_dir=True) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
        (tmp / "report.md").write_text(markdown_report(metrics), encoding="utf-8")
        write_charts(tmp, metrics)
    return metrics


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = parse_args(argv)
    metrics = evaluate(config, argv)
    print(lead_table(metrics))
    print()
    print(console_table(metrics))
    print(f"Report: {config.output_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
