"""Which hybrid retrieval should document search use? Dense, BM25 (Kiwi morphemes) and their fusions, side by side.

    uv run python bench/hybrid_fusion.py --model outputs/pipeline/model --base_model e5-small-offline

Scores the dev part of the independent evaluation sets (data/eval: (a) seen wording, (b) unseen concepts,
(c) Korean-English term pairs both ways) with each model: dense cosine, BM25, and src.index.fuse over each
side's top CANDIDATES hits, with reciprocal-rank fusion ("rrf") or normalized-score fusion ("weighted") at
several lexical weights. The fusion is the function the index's hybrid search calls, so this table is how
its default (``--fusion``, ``--bm25_weight``) was chosen, on the dev part (``--part dev``, the default);
``--part test`` reports the chosen setting, never chooses. Prints nDCG@10 for (a) and (b), MRR@10 for (c).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from src.evaluate import bm25_scores, encode_unique, independent_tasks, rank_top_k, retrieval_metrics
from src.index import CANDIDATES, Hit, fuse
from src.search import load

WEIGHTS = (0.2, 0.3, 0.5)


def hits(scores: np.ndarray, depth: int) -> list[Hit]:
    """The ``depth`` best documents of one query's scores [n_docs] as hits (chunk id = document index)."""
    top = np.argsort(-scores, kind="stable")[:depth]
    return [Hit(str(j), "", 0, "", 0, 0, "", float(scores[j])) for j in top]


def fused_ranking(dense: np.ndarray, lexical: np.ndarray, method: str, weight: float) -> np.ndarray:
    """Top-10 document indices per query [n_q, 10] after fusing each query's dense and BM25 candidates."""
    out = np.full((len(dense), 10), -1)
    for q in range(len(dense)):
        lex = [h for h in hits(lexical[q], CANDIDATES) if h.score > 0]
        ranked = fuse([hits(dense[q], CANDIDATES), lex], method, [1 - weight, weight])[:10]
        out[q, : len(ranked)] = [int(h.chunk_id) for h in ranked]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="outputs/pipeline/model")
    p.add_argument("--base_model", default="e5-small-offline")
    p.add_argument("--eval_dir", type=Path, default=Path("data/eval"))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument(
        "--part", choices=("dev", "test"), default="dev", help="choose on dev; test only to report"
    )
    args = p.parse_args()
    tasks = independent_tasks(args.eval_dir, args.part, set())
    lexical = {t.key: bm25_scores(t.queries, t.documents) for t in tasks}
    systems = {"BM25 (kiwi)": {t.key: rank_top_k(lexical[t.key]) for t in tasks}}
    for label, name in (("base", args.base_model), ("fine-tuned", args.model)):
        model, _ = load(name)
        for t in tasks:
            q, qi = encode_unique(model.encode_query, t.queries, args.batch_size)
            d, di = encode_unique(model.encode_document, t.documents, args.batch_size)
            dense = q[[qi[x] for x in t.queries]] @ d[[di[x] for x in t.documents]].T
            systems.setdefault(f"{label} dense", {})[t.key] = rank_top_k(dense)
            for method in ("rrf", "weighted"):
                for w in WEIGHTS:
                    key = f"{label} {method} w={w}"
                    systems.setdefault(key, {})[t.key] = fused_ranking(dense, lexical[t.key], method, w)
    header = "| system | " + " | ".join(f"{t.key} ({t.metric})" for t in tasks) + " | mean |"
    print(header + "\n|" + "---|" * (len(tasks) + 2))
    for name, ranked in systems.items():
        values = [float(retrieval_metrics(ranked[t.key], t.relevant)[t.metric].mean()) for t in tasks]
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {np.mean(values):.4f} |")


if __name__ == "__main__":
    main()
