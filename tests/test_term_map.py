"""Korean text in every chart: src.plots' NanumGothic draws Hangul without missing glyphs (and the default
font would not), src.term_map labels nodes and categories in Korean, and src.evaluate's charts render
Hangul system names. Glyph warnings fire at draw time, so each figure is rendered to PNG bytes."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from src import evaluate, plots, term_map
from src.data import load_glossary
from src.domain import default_domain

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile("[가-힣]")
PNG = b"\x89PNG\r\n\x1a\n"


def missing_glyphs(draw) -> list[str]:
    """Messages of the 'Glyph ... missing from font' warnings that ``draw()`` emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def render(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def hangul_figure(plt):
    fig, ax = plt.subplots()
    ax.plot([-1, 0, 1], [0, -1, 1])  # negative tick labels: the minus sign must have a glyph too
    ax.set_title("용어 관계 지도: 펄스 폭 변조 (PWM)")
    ax.set_xlabel("반도체·소자 — 계통 보호·계전")
    ax.text(0, 0, "벅 컨버터 ① → 강압", label="x")
    return fig


def test_korean_pyplot_draws_hangul_with_nanumgothic():
    plt = plots.korean_pyplot()
    assert plots.korean_pyplot() is plt  # idempotent: registering twice adds no second font entry
    from matplotlib import font_manager

    assert sum(f.name == plots.FONT for f in font_manager.fontManager.ttflist) >= 1
    for family in (None, ["sans-serif"]):  # the default, and the generic family networkx's labels ask for
        assert (
            Path(font_manager.findfont(font_manager.FontProperties(family=family))).name == "NanumGothic.ttf"
        )
    fig = hangul_figure(plt)
    try:
        png = []
        assert missing_glyphs(lambda: png.append(render(fig))) == []
        assert png[0].startswith(PNG)
    finally:
        plt.close(fig)


def test_the_default_font_would_show_boxes():
    """The check above can fail: with matplotlib's own font the same figure warns about every syllable."""
    import matplotlib

    plt = plots.korean_pyplot()
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        fig = hangul_figure(plt)
        try:
            missing = missing_glyphs(lambda: render(fig))
        finally:
            plt.close(fig)
    assert any("missing from font" in m and "DejaVu Sans" in m for m in missing)


def test_font_file_comes_from_the_package_without_importing_it():
    path = plots.font_file()
    assert path.name == "NanumGothic.ttf" and path.stat().st_size > 1_000_000
    assert path.parent.parent.name == "koreanize_matplotlib"
    check = (  # a fresh interpreter: other tests may import the package themselves
        "import sys; from src.plots import korean_pyplot; korean_pyplot(); "
        "assert 'koreanize_matplotlib' not in sys.modules, 'imported'"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # its import-time restyling never runs


def test_label_is_the_korean_term_with_its_acronym():
    assert term_map.label(
        {"term": "펄스 폭 변조", "acronym": "PWM", "english": "Pulse-width modulation"}
    ) == ("펄스 폭 변조 (PWM)")
    assert term_map.label({"term": "NTC 서미스터", "acronym": "NTC", "english": "NTC thermistor"}) == (
        "NTC 서미스터"
    )
    assert term_map.label({"term": "저항기", "acronym": "", "english": "Resistor"}) == "저항기"
    concepts = load_glossary(ROOT / "data" / "glossary_ko.jsonl")
    labels = [term_map.label({"term": c.term, "acronym": c.acronym or ""}) for c in concepts]
    assert all(text.startswith(c.term) for text, c in zip(labels, concepts, strict=True))
    hangul = [text for text in labels if HANGUL.search(text)]
    assert len(hangul) >= 0.98 * len(labels)  # all but a few Latin-only terms ("RS-485", "SOT-23")


@pytest.fixture(scope="module")
def graph():
    """60 glossary concepts from several categories, linked by seeded random embeddings (no model)."""
    concepts = load_glossary(ROOT / "data" / "glossary_ko.jsonl")[::25][:60]
    emb = np.random.default_rng(0).normal(size=(len(concepts), 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return term_map.build_graph(concepts, emb, k=3, min_similarity=-1.0)


def test_term_graph_is_drawn_in_korean(graph):
    categories = default_domain().categories
    plt = plots.korean_pyplot()
    fig = term_map.graph_figure(graph, seed=0, category_labels=categories)
    try:
        ax = fig.axes[0]
        node_labels = {t.get_text() for t in ax.texts}
        assert node_labels == {term_map.label(graph.nodes[n]) for n in graph.nodes}  # 60 hubs = every node
        assert sum(bool(HANGUL.search(t)) for t in node_labels) >= len(node_labels) - 2
        assert "저항기" in node_labels  # the first glossary concept
        used = dict.fromkeys(graph.nodes[n]["category"] for n in graph.nodes)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [categories[c] for c in used]
        assert (
            len(used) > 5 and ax.get_title() == f"용어 관계 지도: 개념 60개, 간선 {graph.number_of_edges()}개"
        )
        png = []
        assert missing_glyphs(lambda: png.append(render(fig))) == []
        assert png[0].startswith(PNG)
    finally:
        plt.close(fig)


def test_projection_and_unknown_category_keys(graph, tmp_path):
    nodes = list(graph.nodes)
    categories = [graph.nodes[n]["category"] for n in nodes]
    rng = np.random.default_rng(1)
    views = {
        "base (e5)": rng.normal(size=(len(nodes), 8)),
        "fine-tuned (모델)": rng.normal(size=(len(nodes), 8)),
    }
    labels = dict(default_domain().categories)
    labels.pop(categories[0])  # a key the labels lack is drawn as the key itself
    path = tmp_path / "projection.png"
    assert missing_glyphs(lambda: term_map.draw_projection(views, categories, path, labels)) == []
    assert path.read_bytes().startswith(PNG)
    assert missing_glyphs(lambda: term_map.draw_graph(graph, tmp_path / "graph.png", 0, labels)) == []
    assert (tmp_path / "graph.png").read_bytes().startswith(PNG)


def test_evaluate_charts_render_korean_system_names(tmp_path):
    systems = {"파인튜닝 (bge-m3-kr)": 0.8, "기본 모델": 0.5, "BM25 (kiwi)": 0.4}
    metrics = {
        "systems": {s: {m: v for m in evaluate.METRICS} for s, v in systems.items()},
        "slices": {"style": {"구어체": dict(systems), "약어": dict(systems)}},
        "independent": {
            "part": "test",
            "tasks": {"a": {"systems": {s: {"ndcg@10": v} for s, v in systems.items()}, "metric": "ndcg@10"}},
        },
    }
    assert missing_glyphs(lambda: evaluate.write_charts(tmp_path, metrics)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["independent.png", "metrics.png", "styles.png"]
    assert all(p.read_bytes().startswith(PNG) for p in tmp_path.iterdir())
