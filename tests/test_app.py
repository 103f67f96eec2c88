"""src.app, the web demo, in a real headless browser: Debian's chromium driven by Playwright (no browser is
downloaded). The fast tests index data/docs with the tiny random encoder, whose rankings are arbitrary, and
check the page against src.index's own answers; the stand-in test checks that a Korean query finds its
document. Without /usr/bin/chromium the browser tests skip, unless REQUIRE_BROWSER=1 (CI) makes that a
failure.

The README's screenshot comes from :func:`screenshot_search` (see its docstring)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from src import app as demo
from src import index as doc_search
from src import search as corpus_search

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "docs"
FAQ = ROOT / "data" / "faq_sample.jsonl"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
QUERY = "PWM이 뭐야?"
TIMEOUT_MS = 30_000


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_docs(target: Path) -> Path:
    """A copy of the sample documents (not their generator script or the query list)."""
    shutil.copytree(SAMPLES, target)
    return target


def small_glossary(target: Path, category: str = "power_electronics") -> Path:
    """The glossary's concepts of one category (about a hundred, 벅 컨버터 among them), their confusables
    limited to the subset: embedding it is much quicker than the whole glossary."""
    rows = [json.loads(line) for line in (ROOT / "data" / "glossary_ko.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]  # fmt: skip
    kept = [r for r in rows if r["category"] == category]
    ids = {r["id"] for r in kept}
    with target.open("w", encoding="utf-8") as f:
        for r in kept:
            r["confusables"] = [c for c in r.get("confusables") or [] if c in ids]
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return target


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """The app served on a free local port, as src.app's main serves it; closed afterwards."""
    url = demo.launch(app, "127.0.0.1", free_port(), block=False)
    try:
        yield url
    finally:
        app.close()


def ask(page, tab: str, text: str) -> None:
    """Type ``text`` into the tab's box ("doc", "faq", "related"), submit it with Enter, and wait until the
    fine-tuned model's column answers that text."""
    box = page.locator(f"#{tab}-query textarea, #{tab}-query input").first
    box.fill(text)
    box.press("Enter")
    answered = page.locator(f"#{tab}-results-model .app-query q")
    answered.wait_for(timeout=TIMEOUT_MS)
    from playwright.sync_api import expect

    expect(answered).to_have_text(text, timeout=TIMEOUT_MS)


def screenshot_search(
    url: str, path: Path, query: str = "강압 컨버터", size: tuple[int, int] = (1400, 900)
) -> Path:
    """Open the demo at ``url`` in headless chromium, search ``query`` and save a ``size`` screenshot (PNG)
    to ``path``. The README's picture (docs/images/app_search.png) was made with it:

        from pathlib import Path
        from src import app
        from tests.test_app import screenshot_search
        demo = app.build_app(Path("/tmp/demo_index"), faq=Path("data/faq_sample.jsonl"))
        url = app.launch(demo, port=7861, block=False)
        screenshot_search(url, Path("docs/images/app_search.png"))
        demo.close()
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]}, locale="ko-KR")
            page.goto(url, timeout=TIMEOUT_MS)
            ask(page, "doc", query)
            page.evaluate("document.fonts.ready.then(() => true)")  # NanumGothic drawn, not a fallback
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
        finally:
            browser.close()
    return path


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    """Headless chromium, once per module; skips (or fails under REQUIRE_BROWSER=1) when it is missing."""
    if not CHROMIUM.is_file():
        message = (
            f"{CHROMIUM} not found: install Debian's chromium (sudo apt-get install -y chromium) to run the "
            "browser tests; `playwright install` is not used"
        )
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> doc_search.Embedder:
    return doc_search.load_embedder(str(tiny_model_dir))


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, tiny) -> Path:
    """data/docs indexed by the tiny encoder, as the model and as its comparison (two columns)."""
    work = tmp_path_factory.mktemp("app-index")
    index = work / "index"
    doc_search.ingest(sample_docs(work / "docs"), index, {"model": tiny, "compare": tiny})
    return index


@dataclass(frozen=True)
class Demo:
    url: str
    glossary: Path  # the glossary subset it searches
    cache_dir: Path  # its cached glossary and FAQ embeddings


@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory, tiny_index) -> Iterator[Demo]:
    """The demo over the tiny index with the sample FAQ and a term map folder holding only graph.png."""
    from PIL import Image

    work = tmp_path_factory.mktemp("app")
    (work / "term_map").mkdir()
    Image.new("RGB", (64, 48), "steelblue").save(work / "term_map" / "graph.png")
    glossary = small_glossary(work / "glossary.jsonl")
    app = demo.build_app(tiny_index, faq=FAQ, term_map_dir=work / "term_map", glossary=glossary,
                         cache_dir=work / "cache")  # fmt: skip
    with served(app) as url:
        yield Demo(url, glossary, work / "cache")


@pytest.fixture
def page(browser, tiny_app):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ko-KR")
    page = context.new_page()
    page.goto(tiny_app.url, timeout=TIMEOUT_MS)
    yield page
    context.close()


# ----------------------------------------------------------------------------- HTML, without a browser


def test_highlight_escapes_every_piece_and_marks_only_the_spans():
    assert demo.highlight("a<b>PWM&", [(4, 7)]) == "a&lt;b&gt;<mark>PWM</mark>&amp;"
    assert demo.highlight("<i>", []) == "&lt;i&gt;"
    hit = doc_search.Hit("c", "<x>.md", 2, "제목 <b>", 0, 9, "PWM <img src=x onerror=alert(1)>", 0.5)
    shown = demo.doc_hit_html(hit, "PWM")
    assert "<img" not in shown and "<b>" not in shown and "&lt;img src=x" in shown
    assert "<mark>PWM</mark>" in shown and "p.2" in shown and "&lt;x&gt;.md" in shown


def test_filters_split_files_and_folders():
    assert demo.filters(None) is None and demo.filters([]) is None
    assert demo.filters(["a.md", "manuals/"]) == doc_search.where_clause(["a.md"], ["manuals"])


def test_a_reindex_while_the_demo_runs_is_seen_at_the_next_search(tiny, tiny_m3_dir, tmp_path):
    """The demo follows index.json: a new file is searchable without a restart, and an index rebuilt with
    another model is refused in the columns (never searched with the demo's model)."""
    docs, index = sample_docs(tmp_path / "docs"), tmp_path / "index"
    doc_search.ingest(docs, index, {"model": tiny})
    doc_index = doc_search.DocIndex(index)
    sides = demo.load_sides(doc_index)
    only_new = ["cryostat.md"]  # the filter: nothing matches before the re-index
    assert 'class="app-hit"' not in demo.search_documents(doc_index, sides, QUERY, True, 3, only_new)[0]
    (docs / "cryostat.md").write_text("# 냉각\n\n초전도 자석은 액체 헬륨으로 냉각한다.\n", encoding="utf-8")
    doc_search.ingest(docs, index, {"model": tiny})
    column = demo.search_documents(doc_index, sides, QUERY, True, 3, only_new)[0]
    assert column.count('class="app-hit"') == 1 and "cryostat.md" in column
    doc_search.ingest(docs, index, {"model": doc_search.load_embedder(str(tiny_m3_dir))}, rebuild=True)
    column = demo.search_documents(doc_index, sides, QUERY, True, 3, None)[0]
    assert "검색할 수 없습니다" in column and "cannot be mixed" in column and 'class="app-hit"' not in column


# ----------------------------------------------------------------------------- the command line


def test_refusals_are_one_line_errors_before_anything_is_served(
    tiny_index, tiny_model_dir, tmp_path, capsys, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("the server must not start")

    monkeypatch.setattr(demo, "launch", never)
    (tmp_path / "empty").mkdir()
    other = shutil.copytree(tiny_model_dir, tmp_path / "other-model")
    (other / "vocab_note.txt").write_text("another model: its fingerprint differs")
    cases = [
        (["--index", str(tmp_path / "missing")], "folder not found"),
        (["--index", str(tmp_path / "empty")], "not an index"),
        (["--index", str(tiny_index), "--model", str(other)], "cannot be mixed"),
        (["--index", str(tiny_index), "--port", "70000"], "must be a finite number in [1, 65535]"),
        (["--index", str(tiny_index), "--faq", str(ROOT / "data" / "glossary_ko.jsonl"),
          "--cache_dir", str(tmp_path / "cache")], "not an FAQ file"),
    ]  # fmt: skip
    for argv, message in cases:
        assert demo.main(argv) == 2, argv
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


# ----------------------------------------------------------------------------- in the browser


@pytest.mark.slow  # a real browser
def test_search_shows_both_models_side_by_side_with_marked_snippets(page, tiny, tiny_index, tmp_path):
    page.get_by_role("checkbox").first.wait_for(timeout=TIMEOUT_MS)
    ask(page, "doc", QUERY)
    expected = doc_search.search(doc_search.DocIndex(tiny_index), "model", tiny, QUERY, 5)
    model, base = page.locator("#doc-results-model"), page.locator("#doc-results-compare")
    assert model.locator(".app-hit").count() == len(expected) == 5
    files = model.locator(".app-file").all_inner_texts()
    assert files == [h.file for h in expected]
    assert base.locator(".app-hit").count() == 5  # the same tiny model: the same answers
    left, right = base.bounding_box(), model.bounding_box()
    assert left["x"] + left["width"] <= right["x"] + 1 and abs(left["y"] - right["y"]) < 5  # side by side
    assert "pwm" in [m.lower() for m in model.locator("mark").all_inner_texts()]
    assert page.get_by_placeholder("예: PWM이 뭐야?").is_visible()
    fonts = page.evaluate("async () => { await document.fonts.ready; return [...document.fonts]"
                          ".filter(f => f.family.includes('NanumGothic')).map(f => f.status) }")  # fmt: skip
    assert "loaded" in fonts and "error" not in fonts, fonts  # Hangul is drawn, not boxes
    page.screenshot(path=str(tmp_path / "search.png"))
    assert (tmp_path / "search.png").stat().st_size > 10_000


@pytest.mark.slow  # a real browser
def test_filter_and_dense_mode(page, tiny, tiny_index):
    page.locator("#doc-hybrid input").uncheck()
    page.locator("#doc-filter input").click()
    page.get_by_role("option", name="electrical_safety.txt").click()
    page.keyboard.press("Escape")
    ask(page, "doc", QUERY)
    files = page.locator("#doc-results-model .app-file").all_inner_texts()
    where = doc_search.where_clause(["electrical_safety.txt"])
    expected = doc_search.search(
        doc_search.DocIndex(tiny_index), "model", tiny, QUERY, 5, "dense", where=where
    )
    assert files == [h.file for h in expected] and set(files) == {"electrical_safety.txt"}


@pytest.mark.slow  # a real browser
def test_html_in_a_query_is_shown_as_text_and_never_runs(page):
    attack = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">PWM'
    ask(page, "doc", attack)
    for side in ("model", "compare"):
        results = page.locator(f"#doc-results-{side}")
        assert results.locator(".app-query q").inner_text() == attack
        assert results.locator("script, img").count() == 0
    assert page.evaluate("window.__xss") is None


@pytest.mark.slow  # a real browser
def test_faq_and_related_terms_tabs(page, tiny, tiny_app):
    page.get_by_role("tab", name="FAQ").click()
    question = json.loads(FAQ.read_text(encoding="utf-8").splitlines()[0])["question"]
    ask(page, "faq", question)
    first = page.locator("#faq-results-model .app-head").first  # the question itself: cosine 1
    assert first.inner_text() == question
    assert page.locator("#faq-results-compare .app-hit").count() == 3

    page.get_by_role("tab", name="관련 용어").click()
    ask(page, "related", "벅 컨버터")
    concepts, _ = corpus_search.load_corpus(tiny_app.glossary)
    glossary = corpus_search.build_index(
        tiny.model, tiny.folder, concepts, False, tiny_app.cache_dir
    )  # cached
    expected = corpus_search.related(tiny.model, glossary, "벅 컨버터", 8)
    shown = page.locator("#related-results-model .app-head").all_inner_texts()
    assert shown == [glossary.docs[j].shown.partition(": ")[0] for j, _ in expected]
    assert "용어집의 개념과 비교" in page.locator("#related-results-model .app-query").inner_text()


@pytest.mark.slow  # a real browser
def test_term_map_tab_shows_the_pictures_it_has_and_the_command_for_the_rest(page):
    page.get_by_role("tab", name="용어 지도").click()
    picture = page.locator("#term-map-graph img")
    picture.wait_for(timeout=TIMEOUT_MS)
    assert picture.is_visible() and page.locator("#term-map-projection").count() == 0
    note = page.locator("#term-map-note")
    note.wait_for(timeout=TIMEOUT_MS)
    assert "python -m src.term_map --model" in note.inner_text()


@pytest.mark.standin
@pytest.mark.slow
def test_the_standin_finds_the_motor_manual_for_a_korean_query(browser, standin_dir, tmp_path):
    case = next(
        json.loads(line)
        for line in (ROOT / "data" / "sample_docs_queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["query"] == QUERY
    )
    embedder = doc_search.load_embedder(str(standin_dir))
    doc_search.ingest(sample_docs(tmp_path / "docs"), tmp_path / "index", {"model": embedder})
    app = demo.build_app(tmp_path / "index", term_map_dir=tmp_path / "none", cache_dir=tmp_path / "cache",
                         glossary=small_glossary(tmp_path / "glossary.jsonl"))  # fmt: skip
    with served(app) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="ko-KR")
        page.goto(url, timeout=TIMEOUT_MS)
        ask(page, "doc", QUERY)
        files = page.locator("#doc-results-model .app-file").all_inner_texts()
        page.screenshot(path=str(tmp_path / "standin.png"))
        page.close()
    assert files[0] == case["file"] == "motor_control_manual.hwpx", files
