"""A web demo of the document index: search, FAQ matching, related terms and the term map, the fine-tuned and
the base model side by side.

    uv run python -m src.app --index outputs/doc_index
    uv run python -m src.app --index outputs/doc_index --faq data/faq_sample.jsonl --term_map_dir outputs/term_map

The model defaults to the one that built ``--index`` and the base to the index's comparison model (built with
``src.index --base_model``); another model is refused, before the server starts, as ``src.search`` refuses
it. Tabs: "문서 검색" (hybrid or dense search of the index's chunks, limited to some files or folders),
"FAQ" (a question matched against the ``--faq`` questions, both encoded as queries), "관련 용어" (the
glossary concepts nearest to a term) and "용어 지도" (``src.term_map``'s pictures).

The server listens on ``--host`` (default: this machine only) and works offline: no share link, no
analytics, no fonts or scripts from elsewhere (Hangul is drawn with the NanumGothic that koreanize-matplotlib
ships). Every text from a document or a user is HTML-escaped before it is shown, and user queries are never
logged.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from src import cli
from src import index as doc_search
from src import search as corpus_search
from src.data import atomic_path
from src.plots import font_file
from src.search import Doc

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import: no telemetry, no version check

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500  # longer input is cut: a query, not a document
SNIPPET_CHARS = 220  # characters of a chunk shown around the query's words
MAX_TOP_K = 20
EXAMPLES = ["PWM이 뭐야?", "강압 컨버터", "MOSFET 게이트 저항", "I2C 풀업 저항 값", "4-20mA 루프"]
FAQ_EXAMPLES = ["PWM 주파수는 어떻게 정해?", "디커플링 커패시터 위치"]
TERM_EXAMPLES = ["벅 컨버터", "PWM", "서미스터"]
TERM_MAP_FILES = {"graph.png": "용어 관계 그래프", "projection.png": "임베딩 투영 (2차원)"}


# ----------------------------------------------------------------------------- the models


@dataclass
class Side:
    """One model's column: its title, its name (as given, or as the index records it), its embedder
    (src.index.Embedder), the index table it searches (role "model" or "compare"), and its embeddings of the
    glossary and of the FAQ questions (None: no --faq)."""

    title: str
    name: str
    embedder: doc_search.Embedder
    role: str
    glossary: corpus_search.Index | None = None
    faq: corpus_search.Index | None = None


def short_name(name: str) -> str:
    """A model's name for a column title: its last two path parts ("pipeline/model", "e5-small-offline")."""
    return "/".join(Path(name).parts[-2:]) or name


def load_sides(doc_index: doc_search.DocIndex, model: str | None = None, base_model: str | None = None,
               backend: str | None = None) -> list[Side]:  # fmt: skip
    """The fine-tuned model (default: the index's) and the base (default: the index's comparison model, if
    it has one), each checked against the embeddings it will search (src.index.index_embedders); base first,
    read left to right as before -> after (as src.search prints them)."""
    tables = doc_index.meta.tables
    base = base_model or tables.get("compare", {}).get("folder")
    embedders = doc_search.index_embedders(doc_index, model, base, backend)
    sides = []
    for role, embedder in embedders.items():
        label = ("미세조정 모델" if role == "model" else "기본 모델") if len(embedders) > 1 else "모델"
        shown = (model if role == "model" else base_model) or tables[role].get("name") or str(embedder.folder)
        title = f"{label} · {short_name(shown)}" + (
            f" [{embedder.backend}]" if embedder.backend != "torch" else ""
        )
        sides.append(Side(title, shown, embedder, role))
    return sides[::-1]


def read_corpora(faq: Path | None, glossary: Path | None) -> tuple[list[Doc], list[Doc] | None]:
    """The glossary's concepts (default: data/glossary_ko.jsonl) and the FAQ's questions (None: no ``faq``),
    read before any model loads; UsageError when ``faq`` is not an FAQ file."""
    concepts, _ = corpus_search.load_corpus(glossary)
    if faq is None:
        return concepts, None
    questions, as_queries = corpus_search.load_corpus(faq)
    if not as_queries:
        raise cli.UsageError(f"--faq {faq}: not an FAQ file (expected JSON lines with question and answer)")
    return concepts, questions


def embed_corpora(
    sides: list[Side], concepts: list[Doc], questions: list[Doc] | None, cache_dir: Path
) -> None:
    """Each side's embeddings of the glossary concepts (as documents) and of the FAQ questions (as queries),
    cached in ``cache_dir`` as src.search caches them."""
    for s in sides:
        e = s.embedder
        s.glossary = corpus_search.build_index(e.model, e.folder, concepts, False, cache_dir, e.backend)
        if questions is not None:
            s.faq = corpus_search.build_index(e.model, e.folder, questions, True, cache_dir, e.backend)


# ----------------------------------------------------------------------------- HTML (always escaped)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def highlight(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` as escaped HTML with each (start, end) span (character offsets into ``text``) in <mark>."""
    return doc_search.marked(text, spans, lambda part: f"<mark>{esc(part)}</mark>", esc)


def note(message: str) -> str:
    return f'<p class="app-note">{esc(message)}</p>'


def column(
    title: str, query: str, items: list[str], empty: str = "결과가 없습니다.", detail: str = ""
) -> str:
    """One model's results: its title, the query as the user typed it (and a ``detail``), and ``items``
    (HTML) as a ranked list."""
    body = "".join(f'<li class="app-hit">{item}</li>' for item in items) if items else ""
    detail = f" ({esc(detail)})" if detail else ""
    return (
        f'<div class="app-column"><h3 class="app-title">{esc(title)}</h3>'
        f'<p class="app-query">질의: <q>{esc(query)}</q>{detail}</p>'
        + (f'<ol class="app-hits">{body}</ol>' if items else note(empty))
        + "</div>"
    )


def doc_hit_html(hit: doc_search.Hit, query: str, width: int = SNIPPET_CHARS) -> str:
    """A chunk: file, page, heading path and score, then a snippet with the query's words marked."""
    text, spans = doc_search.snippet(hit.text, query, width)
    page = f'<span class="app-page">p.{esc(hit.page)}</span>' if hit.page else ""
    heading = f'<span class="app-heading">{esc(hit.heading)}</span>' if hit.heading else ""
    return (
        f'<div class="app-where"><span class="app-head app-file">{esc(hit.file)}</span>{page}{heading}'
        f'<span class="app-score">{hit.score:.4f}</span></div>'
        f'<div class="app-snippet">{highlight(text, spans)}</div>'
    )


def faq_hit_html(doc: corpus_search.Doc, score: float) -> str:
    """An FAQ entry: its question (what was matched), score, and answer."""
    answer = doc.shown.removeprefix(doc.text).removeprefix(" → ")
    return (
        f'<div class="app-where"><span class="app-head">{esc(doc.text)}</span>'
        f'<span class="app-score">{score:.4f}</span></div><div class="app-snippet">{esc(answer)}</div>'
    )


def concept_html(doc: corpus_search.Doc, score: float) -> str:
    """A glossary concept: its names, category, score and definition."""
    head, _, definition = doc.shown.partition(": ")
    category = f'<span class="app-heading">{esc(doc.category)}</span>' if doc.category else ""
    return (
        f'<div class="app-where"><span class="app-head">{esc(head)}</span>{category}'
        f'<span class="app-score">{score:.4f}</span></div><div class="app-snippet">{esc(definition)}</div>'
    )


# ----------------------------------------------------------------------------- what the tabs do


def clean(text: str | None) -> str:
    """The user's text, stripped and cut to MAX_QUERY_CHARS."""
    return (text or "").strip()[:MAX_QUERY_CHARS]


def filters(selected: list[str] | None) -> str | None:
    """The SQL filter of the chosen files and folders (a folder's choice ends with "/"); None: everything."""
    selected = selected or []
    files = [s for s in selected if not s.endswith("/")]
    folders = [s.rstrip("/") for s in selected if s.endswith("/")]
    return doc_search.where_clause(files, folders)


def filter_choices(doc_index: doc_search.DocIndex) -> list[str]:
    """The index's files, and each folder that holds some ("manuals/")."""
    files = sorted(doc_index.meta.files)
    folders = sorted({f.rpartition("/")[0] + "/" for f in files if "/" in f})
    return folders + files


def search_documents(doc_index: doc_search.DocIndex, sides: list[Side], query: str, hybrid: bool, top_k: int,
                     selected: list[str] | None) -> list[str]:  # fmt: skip
    """Each side's column of the top ``top_k`` chunks for ``query``: hybrid (dense + BM25) or dense only,
    over the index's latest commit (a re-index while the demo runs is seen at the next search)."""
    query = clean(query)
    if not query:
        return [note("질의를 입력하세요.")] * len(sides)
    mode, where, started = ("hybrid" if hybrid else "dense"), filters(selected), time.perf_counter()
    try:
        if doc_index.refresh():  # once for all columns: they show the same commit
            log.info("index: reloaded %s (%d files)", doc_index.path, len(doc_index.meta.files))
    except cli.UserError as e:
        return [column(s.title, query, [], f"검색할 수 없습니다: {cli.one_line(e)}") for s in sides]
    out = []
    for s in sides:
        try:
            doc_index.check(s.role, s.embedder)  # a re-index with another model is refused, not mixed
            hits = doc_search.search(doc_index, s.role, s.embedder, query, int(top_k), mode, where=where)
        except cli.UserError as e:
            out.append(column(s.title, query, [], f"검색할 수 없습니다: {cli.one_line(e)}"))
            continue
        out.append(column(s.title, query, [doc_hit_html(h, query) for h in hits]))
    log.info("document search: %s, top %d, %d models, %.0f ms", mode, top_k, len(sides),
             1000 * (time.perf_counter() - started))  # fmt: skip
    return out


def match_faq(sides: list[Side], question: str, top_k: int) -> list[str]:
    """Each side's column of the FAQ entries whose questions are nearest to ``question``."""
    question = clean(question)
    if not question:
        return [note("질문을 입력하세요.")] * len(sides)
    out = []
    for s in sides:
        if s.faq is None:
            out.append(note("FAQ 파일이 없습니다: --faq data/faq_sample.jsonl 을 붙여 다시 실행하세요."))
            continue
        hits = corpus_search.search(s.embedder.model, s.faq, [question], int(top_k))[0]
        out.append(column(s.title, question, [faq_hit_html(s.faq.docs[j], score) for j, score in hits]))
    log.info("faq: top %d, %d models", top_k, len(sides))
    return out


def related_terms(sides: list[Side], term: str, top_k: int) -> list[str]:
    """Each side's column of the glossary concepts nearest to ``term`` (the term itself left out)."""
    term = clean(term)
    if not term:
        return [note("용어를 입력하세요.")] * len(sides)
    out = []
    for s in sides:
        known = corpus_search.find_concept(s.glossary, term) is not None
        hits = corpus_search.related(s.embedder.model, s.glossary, term, int(top_k))
        items = [concept_html(s.glossary.docs[j], score) for j, score in hits]
        how = "용어집의 개념과 비교" if known else "용어집에 없는 말: 질의로 인코딩해 비교"
        out.append(column(s.title, term, items, detail=how))
    log.info("related terms: top %d, %d models", top_k, len(sides))
    return out


def term_map_command(sides: list[Side], folder: Path) -> str:
    """The command that draws the term map of these models into ``folder``."""
    names = {s.role: s.name for s in sides}
    base = f" --base_model {names['compare']}" if "compare" in names else ""
    return f"uv run python -m src.term_map --model {names['model']}{base} --output_dir {folder}"


# ----------------------------------------------------------------------------- the page


def web_font(source: Path, folder: Path) -> Path:
    """A copy of the TrueType font ``source`` in ``folder`` that browsers accept: without the empty
    VTT source tables (TSI*) that NanumGothic carries and Chromium's font sanitizer rejects. Made once."""
    target = folder / source.name
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    from fontTools.ttLib import TTFont  # matplotlib's font library

    font = TTFont(source)
    for tag in [t for t in font.keys() if t.startswith("TSI")]:  # noqa: SIM118 - TTFont has no __iter__
        del font[tag]
    with atomic_path(target) as tmp:
        font.save(tmp)
    return target


def font_css(folder: Path) -> str:
    """CSS that draws Hangul with NanumGothic from koreanize-matplotlib (its browser-ready copies written to
    ``folder``), served by this app: no font needs to be installed and nothing is fetched from elsewhere.
    "" when the package is missing."""
    try:
        fonts = font_file().parent
    except (ModuleNotFoundError, FileNotFoundError):
        return ""
    faces = [(web_font(fonts / name, folder), weight) for name, weight in
             (("NanumGothic.ttf", 400), ("NanumGothicBold.ttf", 700)) if (fonts / name).is_file()]  # fmt: skip
    import gradio as gr

    gr.set_static_paths([str(f) for f, _ in faces])  # exactly these files, nothing else of the folder
    rules = [
        f"@font-face {{ font-family: 'NanumGothic'; font-weight: {w}; font-style: normal; font-display: swap; "
        f"src: url('gradio_api/file={urllib.parse.quote(str(f.resolve()))}') format('truetype'); }}"
        for f, w in faces
    ]
    return "\n".join(rules)


STYLE = """
.gradio-container { --font: 'Source Sans Pro', 'NanumGothic', ui-sans-serif, system-ui, sans-serif;
  --font-mono: 'IBM Plex Mono', 'NanumGothic', ui-monospace, monospace; }
.app-column { padding: 0 4px; }
.app-title { margin: 0 0 4px; font-size: 1.05rem; }
.app-query { margin: 0 0 8px; color: var(--body-text-color-subdued); font-size: 0.9rem; }
.app-hits { margin: 0; padding-left: 1.4em; }
.app-hit { margin: 0 0 10px; }
.app-where { display: flex; flex-wrap: wrap; gap: 6px; align-items: baseline; font-size: 0.9rem; }
.app-head { font-weight: 700; }
.app-page, .app-heading { color: var(--body-text-color-subdued); }
.app-heading::before { content: '› '; }
.app-score { margin-left: auto; font-family: var(--font-mono); color: var(--body-text-color-subdued); }
.app-snippet { font-size: 0.92rem; line-height: 1.5; }
.app-snippet mark { background: #ffe58a; color: inherit; padding: 0 1px; border-radius: 2px; }
.app-note { color: var(--body-text-color-subdued); }
"""


def result_columns(prefix: str, sides: list[Side]) -> list[gr.HTML]:
    """One HTML output per side, in a row: ``#{prefix}-results-model`` and ``#{prefix}-results-compare``."""
    import gradio as gr

    outputs = []
    with gr.Row(equal_height=False):
        for s in sides:
            with gr.Column(min_width=320):
                outputs.append(gr.HTML(note(f"{s.title}: 결과가 여기에 나옵니다."), js_on_load=None,
                                       elem_id=f"{prefix}-results-{s.role}", elem_classes="app-results"))  # fmt: skip
    return outputs


def build_app(index: Path, model: str | None = None, base_model: str | None = None, backend: str | None = None,
              faq: Path | None = None, term_map_dir: Path = Path("outputs/term_map"), glossary: Path | None = None,
              cache_dir: Path = Path("outputs/index")) -> gr.Blocks:  # fmt: skip
    """The demo over the committed index at ``index``: loads and checks the models, embeds the glossary and
    the FAQ (cached), and lays out the four tabs. Raises a UserError (missing index, another model, a bad
    FAQ file) before anything is served."""
    doc_index = doc_search.DocIndex(index)
    concepts, questions = read_corpora(faq, glossary)
    sides = load_sides(doc_index, model, base_model, backend)
    embed_corpora(sides, concepts, questions, cache_dir)
    import gradio as gr

    chunks = sum(f.get("chunks", 0) for f in doc_index.meta.files.values())
    with gr.Blocks(title="전기·전자 임베딩 검색 데모", analytics_enabled=False) as app:
        gr.HTML(
            f"<h1>전기·전자 임베딩 검색 데모</h1><p>색인 <code>{esc(index)}</code>: 문서 {len(doc_index.meta.files)}개, "
            f"청크 {chunks}개 · " + " / ".join(esc(s.title) for s in sides) + "</p>",
            head=f"<style>{font_css(cache_dir / 'fonts')}\n{STYLE}</style>", js_on_load=None, elem_id="app-header",
        )  # fmt: skip
        with gr.Tab("문서 검색", elem_id="tab-docs"):
            with gr.Row():
                query = gr.Textbox(label="질의", placeholder="예: PWM이 뭐야?", max_length=MAX_QUERY_CHARS,
                                   scale=4, elem_id="doc-query", submit_btn="검색")  # fmt: skip
            with gr.Row():
                hybrid = gr.Checkbox(True, label="하이브리드 검색 (밀집 벡터 + BM25, 끄면 밀집 벡터만)",
                                     elem_id="doc-hybrid")  # fmt: skip
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="결과 수", elem_id="doc-top-k")
                where = gr.Dropdown(filter_choices(doc_index), value=[], multiselect=True,
                                    label="파일·폴더로 좁히기 (비우면 전체)", elem_id="doc-filter")  # fmt: skip
            gr.Examples(EXAMPLES, inputs=query, label="예시 질의")
            outputs = result_columns("doc", sides)
            query.submit(lambda q, h, k, w: search_documents(doc_index, sides, q, h, k, w),
                         [query, hybrid, top_k, where], outputs, api_visibility="private")  # fmt: skip
        with gr.Tab("FAQ", elem_id="tab-faq"):
            question = gr.Textbox(label="질문", placeholder="예: PWM 주파수는 어떻게 정해?", submit_btn="찾기",
                                  max_length=MAX_QUERY_CHARS, elem_id="faq-query")  # fmt: skip
            faq_k = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="결과 수", elem_id="faq-top-k")
            gr.Examples(FAQ_EXAMPLES, inputs=question, label="예시 질문")
            outputs = result_columns("faq", sides)
            question.submit(lambda q, k: match_faq(sides, q, k), [question, faq_k], outputs,
                            api_visibility="private")  # fmt: skip
        with gr.Tab("관련 용어", elem_id="tab-related"):
            term = gr.Textbox(label="용어", placeholder="예: 벅 컨버터", submit_btn="찾기",
                              max_length=MAX_QUERY_CHARS, elem_id="related-query")  # fmt: skip
            term_k = gr.Slider(1, MAX_TOP_K, value=8, step=1, label="결과 수", elem_id="related-top-k")
            gr.Examples(TERM_EXAMPLES, inputs=term, label="예시 용어")
            outputs = result_columns("related", sides)
            term.submit(
                lambda t, k: related_terms(sides, t, k), [term, term_k], outputs, api_visibility="private"
            )
        with gr.Tab("용어 지도", elem_id="tab-term-map"):
            pictures = [(term_map_dir / name, caption) for name, caption in TERM_MAP_FILES.items()]
            for path, caption in pictures:
                if path.is_file():
                    gr.Image(str(path), type="filepath", format="png", label=caption, interactive=False,
                             buttons=["download", "fullscreen"], elem_id=f"term-map-{path.stem}")  # fmt: skip
            if not all(path.is_file() for path, _ in pictures):
                gr.Markdown(
                    f"용어 지도 그림이 `{term_map_dir}`에 없습니다. 다음 명령으로 만든 뒤 데모를 다시 여세요:\n\n"
                    f"```bash\n{term_map_command(sides, term_map_dir)}\n```",
                    elem_id="term-map-note",
                )
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True) -> str:
    """Serve ``app`` on ``host``:``port`` (None: a free port from 7860 on) without a share link or server-side
    rendering; returns its local address. ``block``: serve until Ctrl-C, else return at once (tests)."""
    app.launch(server_name=host, server_port=port, share=False, ssr_mode=False, prevent_thread_lock=not block,
               quiet=not block, footer_links=["gradio", "settings"], show_error=False)  # fmt: skip
    return app.local_url


# ----------------------------------------------------------------------------- command line


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument(
        "--index", type=cli.input_dir, required=True, help="a document index built by python -m src.index"
    )
    p.add_argument("--model", type=cli.model_name,
                   help="the fine-tuned model (default: the model that built --index)")  # fmt: skip
    p.add_argument("--base_model", type=cli.model_name,
                   help="the model to compare with (default: the index's --base_model, if it was built with one)")  # fmt: skip
    cli.add_backend(p, None, " (default: the index's)")
    p.add_argument("--faq", type=cli.optional_input_file,
                   help="FAQ JSONL (question, answer) for the FAQ tab, e.g. data/faq_sample.jsonl")  # fmt: skip
    p.add_argument("--term_map_dir", type=cli.output_path, default=Path("outputs/term_map"),
                   help="where python -m src.term_map wrote graph.png and projection.png")  # fmt: skip
    p.add_argument("--cache_dir", type=cli.output_path, default=Path("outputs/index"),
                   help="cached embeddings of the glossary and the FAQ (shared with src.search)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network)")
    p.add_argument("--port", type=cli.number(int, 1, 65535), default=7860)
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)  # this app's own lines (timings, never the queries), not every library's
    app = build_app(args.index, args.model, args.base_model, args.backend, args.faq, args.term_map_dir,
                    cache_dir=args.cache_dir)  # fmt: skip
    launch(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
