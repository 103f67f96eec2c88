"""Term-relation map: a similarity graph of the glossary's concepts, and what fine-tuning changed.

    uv run python -m src.term_map --model outputs/pipeline/model --base_model e5-small-offline

Each concept (term, English name, definition; embedded with the document prompt) is linked to its
--neighbors nearest concepts whose cosine similarity is at least --min_similarity; edges are undirected
and weighted by that cosine. Writes, atomically, to --output_dir:
    graph.graphml, graph.json   the graph (nodes: id, term, english, acronym, category; edges: weight)
    graph.png                   the graph drawn with a seeded spring layout, coloured by category; the
                                best-connected concepts are labelled with their Korean term (and acronym)
    projection.png              2-D PCA of the concept embeddings, base model vs fine-tuned, by category
    summary.json                edge counts, same-category edge share and category silhouette per model
Figures use NanumGothic (src.plots), so terms, category names and titles are written in Korean.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from src import cli
from src.data import atomic_path, load_glossary
from src.domain import default_domain, load_domain
from src.plots import korean_pyplot
from src.search import GLOSSARY, build_index, concept_doc, load

PALETTE = "tab20"


def knn_edges(embeddings: np.ndarray, k: int, min_similarity: float) -> dict[tuple[int, int], float]:
    """Undirected edges {(i, j): cosine} with i < j, joining each row to its k most similar other rows
    whose cosine is >= min_similarity. ``embeddings``: [n, dim] unit vectors."""
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    edges = {}
    for i, row in enumerate(sims):
        for j in np.argsort(-row, kind="stable")[:k]:
            if row[j] >= min_similarity:
                edges[(min(i, int(j)), max(i, int(j)))] = float(row[j])
    return edges


def build_graph(concepts, embeddings: np.ndarray, k: int, min_similarity: float):
    """A networkx Graph of the concepts (node attributes from the glossary) and their k-NN edges."""
    import networkx as nx

    graph = nx.Graph()
    for c in concepts:
        graph.add_node(
            c.id, term=c.term, english=c.english or "", acronym=c.acronym or "", category=c.category
        )
    for (i, j), weight in knn_edges(embeddings, k, min_similarity).items():
        graph.add_edge(concepts[i].id, concepts[j].id, weight=round(weight, 6))
    return graph


def graph_stats(graph, embeddings: np.ndarray, categories: list[str]) -> dict:
    """Edges, the share of edges within one category, and the silhouette of the categories (cosine; None
    unless there are 2 categories or more and fewer categories than concepts)."""
    from sklearn.metrics import silhouette_score

    same = sum(graph.nodes[a]["category"] == graph.nodes[b]["category"] for a, b in graph.edges)
    defined = 2 <= len(set(categories)) < len(categories)
    silhouette = silhouette_score(embeddings, categories, metric="cosine") if defined else None
    return {
        "edges": graph.number_of_edges(),
        "same_category_edge_share": round(same / max(graph.number_of_edges(), 1), 4),
        "category_silhouette": None if silhouette is None else round(float(silhouette), 4),
    }


def label(node: dict) -> str:
    """The node's Korean term, with its acronym when the term does not already spell it: "펄스 폭 변조 (PWM)",
    "NTC 서미스터"."""
    term, acronym = node["term"], node["acronym"]
    return f"{term} ({acronym})" if acronym and acronym not in term else term


def category_colors(categories: list[str]) -> dict[str, tuple]:
    """One colour per category, in the order the categories first appear."""
    return dict(zip(dict.fromkeys(categories), korean_pyplot().get_cmap(PALETTE).colors, strict=False))


def graph_figure(graph, seed: int, category_labels: dict[str, str]):
    """The term graph as a matplotlib Figure: seeded spring layout, nodes coloured by category, the 60
    best-connected concepts labelled (``label``), a legend of category names (``category_labels``: key ->
    Korean name; a key not in it is shown as is)."""
    import networkx as nx

    plt = korean_pyplot()
    colors = category_colors([graph.nodes[n]["category"] for n in graph.nodes])
    pos = nx.spring_layout(graph, seed=seed, weight="weight")
    fig, ax = plt.subplots(figsize=(14, 12))
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.25, width=0.6)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=28,
                           node_color=[colors[graph.nodes[n]["category"]] for n in graph.nodes])  # fmt: skip
    hubs = sorted(graph.degree, key=lambda nd: (-nd[1], nd[0]))[:60]
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7,
                            labels={n: label(graph.nodes[n]) for n, _ in hubs})  # fmt: skip
    for key, color in colors.items():
        ax.scatter([], [], color=color, label=category_labels.get(key, key))
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    ax.set_title(f"용어 관계 지도: 개념 {graph.number_of_nodes()}개, 간선 {graph.number_of_edges()}개")
    ax.axis("off")
    return fig


def draw_graph(graph, path: Path, seed: int, category_labels: dict[str, str]) -> None:
    fig = graph_figure(graph, seed, category_labels)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    korean_pyplot().close(fig)


def draw_projection(
    views: dict[str, np.ndarray], categories: list[str], path: Path, category_labels: dict[str, str]
) -> None:
    """Side-by-side 2-D PCA of each model's concept embeddings, coloured by category (legend: Korean names
    from ``category_labels``)."""
    from sklearn.decomposition import PCA

    plt = korean_pyplot()
    colors = category_colors(categories)
    fig, axes = plt.subplots(1, len(views), figsize=(7 * len(views), 6), squeeze=False)
    for ax, (name, emb) in zip(axes[0], views.items(), strict=True):
        xy = PCA(n_components=2, random_state=0).fit_transform(emb)
        ax.scatter(xy[:, 0], xy[:, 1], s=10, c=[colors[c] for c in categories])
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    for key, color in colors.items():
        axes[0][-1].scatter([], [], color=color, label=category_labels.get(key, key))
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8, frameon=False)
    fig.suptitle("개념 임베딩 PCA (색: 분야)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument(
        "--model", type=cli.model_name, default="outputs/bge-m3-kr", help="the fine-tuned model folder"
    )
    p.add_argument(
        "--base_model", type=cli.model_name, help="also project this model's embeddings (before vs after)"
    )
    cli.add_backend(p)
    p.add_argument("--glossary", type=cli.input_file, default=str(GLOSSARY))
    p.add_argument("--templates", type=cli.input_file,
                   help="the domain file the glossary is checked against (default: data/templates_ko.yaml)")  # fmt: skip
    p.add_argument(
        "--neighbors", type=cli.positive_int, default=5, help="k nearest concepts linked to each concept"
    )
    p.add_argument("--min_similarity", type=cli.number(float, -1, 1), default=0.5,
                   help="cosine below which no edge is drawn")  # fmt: skip
    p.add_argument("--output_dir", type=cli.output_path, default=Path("outputs/term_map"))
    p.add_argument("--cache_dir", type=cli.output_path, default=Path("outputs/index"))
    p.add_argument("--seed", type=int, default=42, help="seed of the graph layout")
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    domain = load_domain(args.templates) if args.templates else default_domain()
    concepts = load_glossary(args.glossary, domain)
    if len(concepts) < 3:
        raise cli.UsageError(f"{args.glossary}: {len(concepts)} concepts; a term map needs at least 3")
    docs = [concept_doc(c) for c in concepts]
    views = {}
    for name, backend in ((args.base_model, "torch"), (args.model, args.backend)):
        if name:
            model, folder = load(name, backend)
            views[f"{'base' if name == args.base_model else 'fine-tuned'} ({folder.name})"] = build_index(
                model, folder, docs, False, args.cache_dir, backend
            ).embeddings
    import networkx as nx

    categories = [c.category for c in concepts]
    tuned = views[list(views)[-1]]
    graph = build_graph(concepts, tuned, args.neighbors, args.min_similarity)
    summary = {
        "concepts": len(concepts),
        "neighbors": args.neighbors,
        "min_similarity": args.min_similarity,
        "models": {name: graph_stats(build_graph(concepts, emb, args.neighbors, args.min_similarity), emb, categories)
                   for name, emb in views.items()},
    }  # fmt: skip
    with atomic_path(args.output_dir, is_dir=True) as out:
        nx.write_graphml(graph, out / "graph.graphml")
        (out / "graph.json").write_text(json.dumps(nx.node_link_data(graph, edges="edges"), ensure_ascii=False, indent=1),
                                        encoding="utf-8")  # fmt: skip
        draw_graph(graph, out / "graph.png", args.seed, domain.categories)
        draw_projection(views, categories, out / "projection.png", domain.categories)
        (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    for name, stats in summary["models"].items():
        print(f"{name:<40} edges {stats['edges']:>5}  same-category {stats['same_category_edge_share']:.3f}  "
              f"category silhouette {'n/a' if stats['category_silhouette'] is None else format(stats['category_silhouette'], '+.4f')}")  # fmt: skip
    print(
        f"Term map: {args.output_dir}/ (graph.graphml, graph.json, graph.png, projection.png, summary.json)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
