"""src.documents and src.index: every format's text and structure, every bad-file case, chunk sizes in model
tokens, incremental updates and deletions, the model-mismatch refusal, interrupted runs, filters and fusion;
and, with the stand-in, that the sample documents answer their queries."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src import index as idx
from src.documents import Block, Unreadable, chunk_blocks, read_blocks, windows

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "docs"

PWM = "펄스 폭 변조(PWM)는 스위칭 주기에서 켜진 시간의 비율, 곧 듀티 사이클로 평균 전압을 조절한다."
BUCK = "벅 컨버터는 입력보다 낮은 직류 전압을 만드는 스위칭 전원이다. 인덕터와 출력 커패시터로 리플을 줄인다."
SAFETY = "누전 차단기는 누설 전류를 감지해 회로를 끊는다.\n\n접지는 감전을 막는다."


def write_hwpx(path: Path, outline: list[tuple[int, str]], paragraphs: dict[str, list[str]]) -> Path:
    """An HWPX file from python-hwpx: each heading ("개요 N" style) followed by its body paragraphs."""
    from hwpx import HwpxDocument

    document = HwpxDocument.new()
    for level, title in outline:
        document.add_heading(title, level=level)
        for text in paragraphs.get(title, []):
            document.add_paragraph(text, style="본문")
    document.save_to_path(path)
    return path


def write_pdf(path: Path, pages: list[str], encrypt: str | None = None) -> Path:
    """A PDF with one text page per entry (reportlab, NanumGothic), optionally encrypted with pypdf."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen.canvas import Canvas

    from src.plots import font_file

    pdfmetrics.registerFont(TTFont("NanumGothic", str(font_file())))
    canvas = Canvas(str(path), invariant=1)
    for text in pages:
        canvas.setFont("NanumGothic", 11)
        for n, line in enumerate(text.split("\n")):
            canvas.drawString(50, 780 - 16 * n, line)
        canvas.showPage()
    canvas.save()
    if encrypt:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(path))
        writer.encrypt(encrypt)
        writer.write(path)
    return path


def blank_pdf(path: Path) -> Path:
    """A PDF whose page has no text layer, as a scan has none."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.write(path)
    return path


@pytest.fixture
def docs(tmp_path) -> Path:
    """A small folder of every format, one of them in a subfolder."""
    folder = tmp_path / "docs"
    (folder / "manuals").mkdir(parents=True)
    write_hwpx(folder / "manuals" / "motor.hwpx", [(1, "모터 구동"), (2, "PWM 제어")], {"PWM 제어": [PWM]})
    (folder / "buck.md").write_text(
        f"# 전원 설계\n\n## 벅 컨버터\n\n{BUCK}\n\n| 항목 | 값 |\n|---|---|\n| 입력 | 12 V |\n"
    )
    (folder / "fet.html").write_text(
        "<html><head><script>var x = '스크립트';</script></head><body><nav>메뉴 홈</nav><h1>MOSFET</h1>"
        "<h2>게이트</h2><p>게이트 저항은 스위칭 속도와 링잉을 정한다.</p><ul><li>드라이버 전류</li></ul></body></html>"
    )
    (folder / "safety.txt").write_text(SAFETY)
    write_pdf(
        folder / "sensor.pdf", ["센서 인터페이스\n서미스터는 온도에 따라 저항이 변한다.", "4-20 mA 전류 루프"]
    )
    return folder


def ingest(docs: Path, index: Path, embedder, **kwargs) -> idx.Summary:
    return idx.ingest(docs, index, {"model": embedder}, **kwargs)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return idx.load_embedder(str(tiny_model_dir))


def rows(index: Path, role: str = "model") -> list[dict]:
    return idx.DocIndex(index).table(role).to_arrow().select(["chunk_id", "file", "page", "text"]).to_pylist()


# ----------------------------------------------------------------------------- formats


def test_each_format_gives_its_text_pages_and_headings(docs):
    hwpx = read_blocks(docs / "manuals" / "motor.hwpx")
    assert hwpx == [Block(PWM, 0, ("모터 구동", "PWM 제어"))]
    md = read_blocks(docs / "buck.md")
    assert md[0] == Block(f"{BUCK}\n항목 | 값\n입력 | 12 V", 0, ("전원 설계", "벅 컨버터"))
    html = read_blocks(docs / "fet.html")
    assert [b.heading for b in html] == [("MOSFET", "게이트")]
    assert "게이트 저항은" in html[0].text and "드라이버 전류" in html[0].text
    assert "스크립트" not in html[0].text and "메뉴" not in html[0].text
    assert [b.text for b in read_blocks(docs / "safety.txt")] == SAFETY.split("\n\n")
    pdf = read_blocks(docs / "sensor.pdf")
    assert [b.page for b in pdf] == [1, 2]
    assert "서미스터는 온도에 따라 저항이 변한다." in pdf[0].text and "전류 루프" in pdf[1].text


def test_cp949_text_is_read(tmp_path):
    path = tmp_path / "legacy.txt"
    path.write_bytes("절연 저항 측정은 메거로 한다.".encode("cp949"))
    assert read_blocks(path)[0].text == "절연 저항 측정은 메거로 한다."


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("scan.pdf", blank_pdf, "no text layer (a scanned PDF?)"),
        ("locked.pdf", lambda p: write_pdf(p, ["비밀 문서"], encrypt="pw"), "encrypted PDF"),
        ("broken.pdf", lambda p: p.write_bytes(b"%PDF-1.7\n1 0 obj <<"), "not a readable PDF"),
        ("broken.hwpx", lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "not a readable HWPX file"),
        ("report.docx", lambda p: p.write_bytes(b"PK"), "unsupported file type '.docx'"),
        ("binary.txt", lambda p: p.write_bytes(b"\x80\x80\xff\xfe\x00"), "text is neither UTF-8 nor CP949"),
        ("empty.md", lambda p: p.write_text("   \n"), "no text"),
    ],
)
def test_bad_files_are_unreadable_with_a_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(Unreadable) as e:
        read_blocks(path)
    assert str(e.value).startswith(reason)


# ----------------------------------------------------------------------------- chunking


def test_chunks_fit_the_token_budget_overlap_and_cut_at_sentences(tiny):
    text = " ".join(f"문장 {i}번은 전력 변환 회로의 효율을 설명한다." for i in range(60))
    blocks = [Block(text, 3, ("설계", "효율"))]
    chunks = chunk_blocks(blocks, tiny.tokenizer, 64, 8)
    assert len(chunks) > 3
    heading_tokens = len(tiny.tokenizer.encode("설계 > 효율", add_special_tokens=False).ids)
    for c in chunks:
        assert len(tiny.tokenizer.encode(c.text, add_special_tokens=False).ids) <= 64 - heading_tokens
        assert text[c.start : c.end] == c.text  # offsets index the page text
        assert (c.page, c.heading) == (3, "설계 > 효율")
        assert c.text.endswith(".")  # cut at a sentence end
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start < a.end  # consecutive chunks overlap


def test_windows_never_cut_inside_a_word():
    text = "가" * 5 + " " + "나" * 5 + " " + "다" * 5
    offsets = [(i, i + 1) for i, ch in enumerate(text) if ch != " "]
    for s, e in windows(text, offsets, 7, 2):
        assert (s == 0 or text[s - 1] == " ") and (e == len(text) or text[e] == " ")


def test_sections_do_not_cross_pages_or_headings(tiny):
    blocks = [
        Block("첫 쪽 내용.", 1, ()),
        Block("둘째 쪽 내용.", 2, ()),
        Block("제목 아래 내용.", 2, ("제목",)),
    ]
    chunks = chunk_blocks(blocks, tiny.tokenizer, 128, 16)
    assert [(c.page, c.heading, c.text) for c in chunks] == [
        (1, "", "첫 쪽 내용."),
        (2, "", "둘째 쪽 내용."),
        (2, "제목", "제목 아래 내용."),
    ]
    assert chunks[2].start == len("둘째 쪽 내용.") + 2  # offsets count from the page's text


# ----------------------------------------------------------------------------- the index


def test_ingest_indexes_every_format_and_reports_skipped_files(docs, tmp_path, tiny):
    blank_pdf(docs / "scan.pdf")
    (docs / "notes.docx").write_bytes(b"PK")
    (docs / ".hidden.txt").write_text("숨김")
    summary = ingest(docs, tmp_path / "index", tiny)
    assert sorted(summary.indexed) == [
        "buck.md",
        "fet.html",
        "manuals/motor.hwpx",
        "safety.txt",
        "sensor.pdf",
    ]
    assert summary.skipped == {
        "notes.docx": "unsupported file type (.docx)",
        "scan.pdf": "no text layer (a scanned PDF?)",
    }
    text = "\n".join(summary.lines())
    assert "5 files indexed" in text and "2 skipped" in text and "skipped scan.pdf: no text layer" in text
    meta = json.loads((tmp_path / "index" / "index.json").read_text())
    assert meta["tables"]["model"]["fingerprint"] == idx.model_fingerprint(tiny.folder)
    assert meta["files"]["sensor.pdf"]["chunks"] == 2
    pages = {(r["file"], r["page"]) for r in rows(tmp_path / "index")}
    assert {("sensor.pdf", 1), ("sensor.pdf", 2), ("buck.md", 0)} <= pages


def test_rerun_embeds_only_changed_files_and_removes_deleted_ones(docs, tmp_path, tiny):
    index = tmp_path / "index"
    ingest(docs, index, tiny)
    before = {r["chunk_id"]: r for r in rows(index)}
    again = ingest(docs, index, tiny)
    assert (again.indexed, again.chunks, again.unchanged) == ([], 0, 5)
    (docs / "safety.txt").write_text(SAFETY + "\n\n절연 저항은 메거로 측정한다.")
    (docs / "fet.html").unlink()
    summary = ingest(docs, index, tiny)
    assert (summary.indexed, summary.removed, summary.unchanged) == (["safety.txt"], ["fet.html"], 3)
    assert summary.chunks == 1
    after = {r["chunk_id"]: r for r in rows(index)}
    assert not any(r["file"] == "fet.html" for r in after.values())
    assert "메거" in next(r["text"] for r in after.values() if r["file"] == "safety.txt")
    assert [h.file for h in idx.search(idx.DocIndex(index), "model", tiny, "메거", 5, mode="bm25")] == [
        "safety.txt"
    ]
    kept = {k: v for k, v in before.items() if v["file"] not in ("fet.html", "safety.txt")}
    assert all(after[k] == v for k, v in kept.items())
    assert idx.read_meta(index).files.keys() == {"buck.md", "manuals/motor.hwpx", "safety.txt", "sensor.pdf"}


def test_the_compare_table_follows_updates_without_naming_its_model_again(docs, tmp_path, tiny, tiny_m3_dir):
    index = tmp_path / "index"
    idx.ingest(docs, index, {"model": tiny, "compare": idx.load_embedder(str(tiny_m3_dir))})
    (docs / "buck.md").unlink()
    summary = ingest(docs, index, tiny)
    assert summary.removed == ["buck.md"]
    for role in ("model", "compare"):
        assert "buck.md" not in {r["file"] for r in rows(index, role)}
    assert {r["chunk_id"] for r in rows(index, "model")} == {r["chunk_id"] for r in rows(index, "compare")}


def test_another_model_is_refused_for_indexing_and_search(docs, tmp_path, tiny, tiny_m3_dir):
    index = tmp_path / "index"
    ingest(docs, index, tiny)
    other = idx.load_embedder(str(tiny_m3_dir))
    with pytest.raises(idx.IndexError_, match="cannot be mixed"):
        ingest(docs, index, other)
    with pytest.raises(idx.IndexError_, match="cannot be mixed"):
        idx.DocIndex(index).check("model", other)
    assert idx.read_meta(index).tables["model"]["fingerprint"] == idx.model_fingerprint(tiny.folder)
    rebuilt = ingest(docs, index, other, rebuild=True)
    assert len(rebuilt.indexed) == 5
    assert idx.read_meta(index).tables["model"]["sparse"] is True


@pytest.mark.slow
def test_index_and_search_commands_refuse_another_model_in_one_line(
    docs, tmp_path, tiny_model_dir, tiny_m3_dir
):
    index = tmp_path / "index"
    run = [sys.executable, "-m", "src.index", "--docs", str(docs), "--index", str(index)]
    assert (
        subprocess.run([*run, "--model", str(tiny_model_dir)], cwd=ROOT, capture_output=True).returncode == 0
    )
    for argv in (
        [*run, "--model", str(tiny_m3_dir)],
        [
            sys.executable,
            "-m",
            "src.search",
            "--index",
            str(index),
            "--model",
            str(tiny_m3_dir),
            "--query",
            "PWM",
        ],
    ):
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 2
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "cannot be mixed" in last and "Traceback" not in out.stderr


def test_uncommitted_writes_are_invisible_and_the_next_run_starts_from_the_commit(
    docs, tmp_path, tiny, monkeypatch
):
    """What an interruption between writing a table and committing index.json leaves behind, also when
    every older version is pruned at each commit (the committed one must survive the next run's writes)."""
    from datetime import timedelta

    monkeypatch.setattr(idx, "KEEP_VERSIONS", timedelta(0))
    index = tmp_path / "index"
    ingest(docs, index, tiny)
    committed = rows(index)
    meta = idx.read_meta(index)
    db = idx.connect(index)
    idx.write_table(db, "chunks", meta.tables["model"]["version"], None, ["buck.md", "fet.html"], None)
    assert len(db.open_table("chunks").to_arrow()) < len(committed)  # the table moved on ...
    assert rows(index) == committed  # ... but readers still see the commit
    summary = ingest(docs, index, tiny)
    assert summary.indexed == [] and rows(index) == committed


@pytest.mark.slow
def test_ctrl_c_while_indexing_leaves_the_previous_index_usable(tmp_path, tiny_model_dir):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(400):
        (folder / f"note{i:03d}.txt").write_text(f"{i}번 메모: {BUCK}\n\n{PWM}")
    index = tmp_path / "index"
    argv = [
        sys.executable,
        "-m",
        "src.index",
        "--docs",
        str(folder),
        "--model",
        str(tiny_model_dir),
        "--index",
        str(index),
    ]
    first = subprocess.run([*argv], cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    committed = rows(index)
    for i in range(400):
        (folder / f"note{i:03d}.txt").write_text(f"{i}번 메모 (개정): {SAFETY}")
    # a job started in the background (`cmd &`) inherits an ignored SIGINT: give the child Ctrl-C back
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    seen = ""
    deadline = time.time() + 120
    while "read:" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    err = seen + proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err
    assert re.split(r"[\r\n]+", err.strip())[-1].endswith("interrupted")
    assert rows(index) == committed
    finished = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert finished.returncode == 0 and "400 files indexed" in finished.stderr
    assert all("개정" in r["text"] for r in rows(index))


def test_unreadable_files_are_not_read_again_until_they_change(docs, tmp_path, tiny, monkeypatch):
    blank_pdf(docs / "scan.pdf")
    ingest(docs, tmp_path / "index", tiny)
    reads = []
    monkeypatch.setattr(idx, "read_blocks", lambda path: reads.append(path.name) or read_blocks(path))
    again = ingest(docs, tmp_path / "index", tiny)
    assert reads == [] and again.skipped == {"scan.pdf": "no text layer (a scanned PDF?)"}
    (docs / "scan.pdf").write_text("이제는 텍스트 파일이지만 확장자는 PDF")
    third = ingest(docs, tmp_path / "index", tiny)
    assert reads == ["scan.pdf"] and third.skipped["scan.pdf"].startswith("not a readable PDF")


def test_a_tokenizer_that_truncates_still_chunks_the_whole_text(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "tokenizer.json").read_text())
    config["truncation"] = {"direction": "Right", "max_length": 16, "strategy": "LongestFirst", "stride": 0}
    (model / "tokenizer.json").write_text(json.dumps(config))
    text = " ".join(f"{i}번 문장은 스위칭 전원의 손실을 설명한다." for i in range(40))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "long.txt").write_text(text)
    ingest(tmp_path / "docs", tmp_path / "index", idx.load_embedder(str(model)), chunk_tokens=64)
    chunks = " ".join(r["text"] for r in rows(tmp_path / "index"))
    assert all(f"{i}번 문장은" in chunks for i in range(40))


def test_every_table_keeps_the_text_budget_the_index_began_with(docs, tmp_path, tiny, tiny_model_dir):
    """Chunks leave room for the longest document prompt of the models the index began with, also when a
    later run names only the fine-tuned model; a comparison model whose prompt no longer fits is refused."""
    wordy = shutil.copytree(tiny_model_dir, tmp_path / "wordy")
    config = json.loads((wordy / "config_sentence_transformers.json").read_text())
    config["prompts"]["document"] = "passage: 전기 전자 기술 문서의 한 단락입니다: "
    (wordy / "config_sentence_transformers.json").write_text(json.dumps(config))
    compare = idx.load_embedder(str(wordy))
    prompt = {
        name: len(tiny.tokenizer.encode(e.document_prompt).ids)
        for name, e in [("tiny", tiny), ("wordy", compare)]
    }
    assert prompt["wordy"] > prompt["tiny"]

    index = tmp_path / "index"
    idx.ingest(docs, index, {"model": tiny, "compare": compare}, chunk_tokens=64)
    budget = idx.read_meta(index).text_tokens
    assert budget == 64 - prompt["wordy"]
    text = " ".join(f"{i}번 문장은 스위칭 전원의 손실을 설명한다." for i in range(30))
    (docs / "long.txt").write_text(text)
    ingest(docs, index, tiny)  # the comparison table follows, loaded from the record
    assert idx.read_meta(index).text_tokens == budget
    expected = [c.text for c in chunk_blocks(read_blocks(docs / "long.txt"), tiny.tokenizer, budget, 16)]
    for role in ("model", "compare"):
        found = sorted((r["chunk_id"], r["text"]) for r in rows(index, role) if r["file"] == "long.txt")
        assert [t for _, t in found] == expected

    alone = tmp_path / "alone"
    ingest(docs, alone, tiny, chunk_tokens=64)
    assert idx.read_meta(alone).text_tokens == 64 - prompt["tiny"]
    with pytest.raises(idx.IndexError_, match="compare model's document prompt"):
        idx.ingest(docs, alone, {"model": tiny, "compare": compare}, chunk_tokens=64)


def test_filters_take_names_with_quotes_percent_underscore_and_backslash(tmp_path, tiny):
    names = ["it's", "50%", "a_b", "back\\slash"]
    for name in [*names, "ab", "a-b"]:
        (tmp_path / "docs" / name).mkdir(parents=True)
        (tmp_path / "docs" / name / f"{name}.txt").write_text(f"{name} 폴더의 접지 문서.")
    ingest(tmp_path / "docs", tmp_path / "index", tiny)
    table = idx.DocIndex(tmp_path / "index").table("model")
    for name in names:
        where = idx.where_clause(folders=[name])
        assert {h.file for h in idx.dense(table, tiny.query("접지")[0], 10, where)} == {
            f"{name}/{name}.txt"
        }, name
        where = idx.where_clause(files=[f"{name}/{name}.txt"])
        assert len(idx.dense(table, tiny.query("접지")[0], 10, where)) == 1, name


def test_a_damaged_record_is_one_clear_error(tmp_path):
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(idx.IndexError_, match="index.json: not an index record"):
        idx.DocIndex(tmp_path)
    with pytest.raises(idx.IndexError_, match="not an index"):
        idx.DocIndex(tmp_path / "missing")


# ----------------------------------------------------------------------------- retrieval


def test_filters_fusion_and_snippets(docs, tmp_path, tiny):
    index = tmp_path / "index"
    ingest(docs, index, tiny)
    doc_index = idx.DocIndex(index)
    bm25 = idx.search(doc_index, "model", tiny, "누설 전류", 3, mode="bm25")
    assert bm25[0].file == "safety.txt"
    only = idx.where_clause(folders=["manuals"])
    for mode in ("dense", "bm25", "hybrid"):
        hits = idx.search(doc_index, "model", tiny, "듀티 사이클", 5, mode=mode, where=only)
        assert {h.file for h in hits} == {"manuals/motor.hwpx"}
    hits = idx.search(
        doc_index, "model", tiny, "누설 전류", 5, where=idx.where_clause(files=["safety.txt", "buck.md"])
    )
    assert {h.file for h in hits} == {"safety.txt", "buck.md"}
    text, spans = idx.snippet(SAFETY, "누설 전류 감지")
    assert [text[a:b] for a, b in spans] == ["누설", "전류", "감지"]
    a = [idx.Hit("a", "f", 0, "", 0, 1, "x", 0.9), idx.Hit("b", "f", 0, "", 0, 1, "y", 0.8)]
    b = [idx.Hit("b", "f", 0, "", 0, 1, "y", 7.0)]
    assert [h.chunk_id for h in idx.fuse([a, b])] == ["b", "a"]
    assert [h.chunk_id for h in idx.fuse([a, b], "weighted", [0.95, 0.05])] == [
        "a",
        "b",
    ]  # 0.95 > 0.84 + 0.05
    assert [h.chunk_id for h in idx.fuse([a, b], "weighted", [0.5, 0.5])] == ["b", "a"]  # 0.5 < 0.44 + 0.5


def test_exact_and_ann_search_agree_on_a_table_with_an_ann_index(tmp_path, monkeypatch):
    """The ANN index (IVF-PQ, refined) is built from ANN_MIN_ROWS chunks; its top hit matches exact search."""
    import numpy as np

    monkeypatch.setattr(idx, "ANN_MIN_ROWS", 2000)
    monkeypatch.setattr(idx, "ANN_PARTITIONS_ROWS", 256)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [idx.Chunk(f"청크 {i}", 0, "", 0, 1) for i in range(3000)]
    table_rows = idx.rows([idx.FileChunks("a.txt", "0" * 64, chunks)], vectors, None, ["청크"] * 3000)
    db = idx.connect(tmp_path)
    idx.write_table(db, "chunks", None, table_rows.schema, [], table_rows)
    table = db.open_table("chunks")
    assert idx.index_on(table, "vector") is not None
    for q in vectors[:20]:
        assert idx.dense(table, q, 1)[0].chunk_id == idx.dense(table, q, 1, exact=True)[0].chunk_id


def test_the_ann_index_is_rebuilt_when_the_table_outgrows_it_or_its_settings_change(
    tmp_path, tiny, tiny_model_dir, monkeypatch
):
    """Growth within 2x goes into the existing partitions; at 2x, or with other or unknown (older) settings,
    the index is built anew, for the comparison table too and without loading its model when nothing else
    changed; below ANN_MIN_ROWS it is dropped. index.json records the settings."""
    monkeypatch.setattr(idx, "ANN_MIN_ROWS", 512)
    monkeypatch.setattr(idx, "ANN_PARTITIONS_ROWS", 256)  # lance trains at most one partition per 256 rows
    folder, index = tmp_path / "docs", tmp_path / "index"
    folder.mkdir()
    compare = shutil.copytree(tiny_model_dir, tmp_path / "compare")
    both = {"model": tiny, "compare": idx.load_embedder(str(compare))}

    def run(n: int, embedders: dict | None = None) -> tuple[idx.Summary, list, list]:
        """Ingest n one-chunk files: the summary, each table's ANN record and vector index."""
        for path in folder.iterdir():
            if int(path.stem[4:]) >= n:
                path.unlink()
        for i in range(n):
            (folder / f"note{i:04d}.txt").write_text(f"{i}번 메모: 스위칭 주파수 {i} kHz에서 리플을 잰다.")
        summary = idx.ingest(folder, index, embedders or {"model": tiny})
        doc_index = idx.DocIndex(index)
        tables = [doc_index.table(role) for role in ("model", "compare")]
        assert [t.count_rows() for t in tables] == [n, n]
        indexes = [idx.index_on(t, "vector") for t in tables]
        for table, vector_index in zip(tables, indexes, strict=True):
            assert vector_index is None or table.index_stats(vector_index.name).num_unindexed_rows == 0
        return summary, [doc_index.meta.tables[r]["ann"] for r in ("model", "compare")], indexes

    def built(partitions: int) -> list[str]:
        return [
            f"{t}: ANN index built (IVF_PQ, {partitions} partitions)" for t in ("chunks", "chunks_compare")
        ]

    summary, anns, _ = run(600, both)
    assert anns == [{"type": "IVF_PQ", "distance": "cosine", "partitions": 2, "sub_vectors": 8}] * 2
    assert summary.ann == built(2)
    summary, anns, _ = run(900)  # 3 partitions' worth: the new rows join the existing 2
    assert [a["partitions"] for a in anns] == [2, 2] and summary.ann == []
    summary, anns, _ = run(1100)
    assert [a["partitions"] for a in anns] == [4, 4] and summary.ann == built(4)

    compare.rename(tmp_path / "moved")  # an ANN-only rebuild needs no model
    for record in ({**anns[0], "sub_vectors": 4}, None):  # other settings; an older toolkit's (none)
        meta = idx.read_meta(index)
        for role in ("model", "compare"):
            meta.tables[role]["ann"] = record
        idx.write_meta(index, meta)
        summary, anns, _ = run(1100)
        assert (
            summary.indexed == [] and summary.ann == built(4) and [a["sub_vectors"] for a in anns] == [8, 8]
        )
    before = (index / idx.META).stat()
    doc_index = idx.DocIndex(index)
    summary, _, _ = run(1100)
    assert summary.ann == [] and (index / idx.META).stat().st_ino == before.st_ino  # not even rewritten
    assert not doc_index.refresh()

    (tmp_path / "moved").rename(compare)
    summary, anns, indexes = run(400)
    assert anns == [None, None] and indexes == [None, None]
    assert summary.ann == [
        f"{t}: ANN index dropped (under 512 chunks: exact search)" for t in ("chunks", "chunks_compare")
    ]


# ----------------------------------------------------------------------------- the sample documents


@pytest.mark.standin
@pytest.mark.slow
def test_sample_documents_answer_their_queries(tmp_path, standin_dir):
    shutil.copytree(SAMPLES, tmp_path / "docs")
    embedder = idx.load_embedder(str(standin_dir))
    summary = ingest(tmp_path / "docs", tmp_path / "index", embedder)
    assert not summary.skipped
    doc_index = idx.DocIndex(tmp_path / "index")
    cases = [
        json.loads(line)
        for line in (ROOT / "data" / "sample_docs_queries.jsonl").read_text().splitlines()
        if line.strip()
    ]
    found = [idx.search(doc_index, "model", embedder, c["query"], 3)[0].file == c["file"] for c in cases]
    assert sum(found) / len(found) >= 0.8, list(zip([c["query"] for c in cases], found, strict=True))
    pwm = idx.search(doc_index, "model", embedder, "PWM이 뭐야?", 3)
    assert pwm[0].file.endswith(".hwpx")


def test_m3_sparse_mode_and_hybrid_with_it(docs, tmp_path, tiny_m3_dir):
    m3 = idx.load_embedder(str(tiny_m3_dir))
    index = tmp_path / "index"
    ingest(docs, index, m3)
    doc_index = idx.DocIndex(index)
    matrix, ids = doc_index.sparse_matrix("model")
    assert matrix.shape[0] == len(ids) == len(rows(index))
    q_vector, q_weights = m3.query("누설 전류 감지")
    hits = idx.search(doc_index, "model", m3, "누설 전류 감지", 3, mode="sparse")
    expected = sorted(((matrix[i].toarray()[0][list(q_weights)] @ list(q_weights.values()), ids[i])
                       for i in range(len(ids))), key=lambda x: -x[0])[:3]  # fmt: skip
    assert [h.chunk_id for h in hits] == [c for s, c in expected if s > 0]
    assert len(idx.search(doc_index, "model", m3, "누설 전류 감지", 3, mode="hybrid")) == 3


@pytest.mark.slow
def test_search_command_on_an_index_with_compare_related_and_faq(
    docs, tmp_path, tiny_model_dir, tiny_m3_dir, capsys
):
    from src import search

    index = tmp_path / "index"
    assert idx.main(["--docs", str(docs), "--model", str(tiny_model_dir), "--base_model", str(tiny_m3_dir),
                     "--index", str(index)]) == 0  # fmt: skip
    capsys.readouterr()
    common = [
        "--index",
        str(index),
        "--query",
        "누설 전류",
        "--width",
        "120",
        "--cache_dir",
        str(tmp_path / "cache"),
    ]
    assert (
        search.main([*common, "--base_model", str(tiny_m3_dir), "--mode", "bm25", "--related", "벅 컨버터"])
        == 0
    )
    blocks = [b.strip() for b in capsys.readouterr().out.split("\n\n")]
    doc_block = next(b for b in blocks if b.startswith("문서 검색: 누설 전류"))
    header, first = doc_block.splitlines()[1:3]
    assert "base (tiny-m3)" in header and "fine-tuned (tiny-encoder)" in header
    assert first.count("safety.txt | ") == 2 and "«누설»" in first  # BM25 finds it for both models
    assert any(b.startswith("관련 용어: 벅 컨버터") for b in blocks)
    assert search.main([*common, "--corpus", str(ROOT / "data" / "faq_sample.jsonl")]) == 0
    blocks = [b.strip() for b in capsys.readouterr().out.split("\n\n")]
    assert any(b.startswith("문서 검색: 누설 전류") for b in blocks) and any(
        b.startswith("질의: 누설 전류") for b in blocks
    )
    assert (
        search.main(["--index", str(index), "--query", "x", "--mode", "sparse", "--cache_dir", str(tmp_path)])
        == 2
    )
    assert "no M3 sparse head" in capsys.readouterr().err
