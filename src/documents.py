"""Technical documents as text: one reader per format, and a structure-aware chunker sized in model tokens.

Readers turn a file into blocks (a paragraph, a list item, a page of a PDF), each with its page and heading
path. The chunker groups a section's blocks (same page, same heading path) into chunks of at most
``max_tokens`` model tokens, cutting preferably at a paragraph end, then a sentence end, then a line end,
then a space, never inside a word; consecutive chunks of one section share ``overlap`` tokens.

Character offsets (``Chunk.start``, ``Chunk.end``) index the extracted text of the chunk's page (PDF) or of the
whole document (other formats): its blocks joined by a blank line.

Formats: PDF (pypdf, text per page; its outline, when there is one, gives the heading), Markdown
(markdown-it-py), HTML (Beautiful Soup; navigation, scripts and styles skipped), TXT (UTF-8 or CP949,
blank-line paragraphs) and HWPX (python-hwpx; "개요 N" / "Outline N" paragraph styles are headings).
A file that has no text to give (a scanned PDF, an encrypted or corrupt file, an unknown extension) raises
``Unreadable`` with the reason.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

SUPPORTED = (".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".hwpx")
HEADING_SEPARATOR = " > "
BLOCK_SEPARATOR = "\n\n"


class Unreadable(Exception):
    """A file the index skips: the message is the reason, shown next to its path in the summary."""


@dataclass(frozen=True)
class Block:
    text: str
    page: int  # 1-based page of a PDF; 0 for formats without pages
    heading: tuple[str, ...]  # the heading path, outermost first


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int
    heading: str  # the heading path joined by HEADING_SEPARATOR
    start: int  # character offsets of ``text`` in its page's (or document's) extracted text
    end: int


# ----------------------------------------------------------------------------- readers


def clean(text: str) -> str:
    """Spaces collapsed inside lines, at most one blank line between lines, no NUL characters."""
    lines = [
        re.sub(r"[ \t\u00a0\u3000]+", " ", line).strip() for line in text.replace("\x00", "").splitlines()
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def read_pdf(path: Path) -> list[Block]:
    """One block per page with text; the page's heading is the last outline entry starting on or before it."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        logging.getLogger("pypdf").setLevel(logging.ERROR + 10)  # it logs repairs of damaged files
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still lets one read
                raise Unreadable("encrypted PDF")
            pages = [clean(page.extract_text() or "") for page in reader.pages]
            outline = pdf_outline(reader)
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise Unreadable(f"not a readable PDF ({type(e).__name__}: {str(e)[:120]})") from None
    if not any(pages):
        raise Unreadable("no text layer (a scanned PDF?)")
    heading: tuple[str, ...] = ()
    blocks = []
    for number, text in enumerate(pages, start=1):
        heading = outline.get(number, heading)
        if text:
            blocks.append(Block(text, number, heading))
    return blocks


def pdf_outline(reader) -> dict[int, tuple[str, ...]]:
    """1-based page -> the heading path of the last outline entry that starts on it."""
    found: dict[int, tuple[str, ...]] = {}

    def walk(items, parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            last = (*parents, str(item.title).strip())
            page = reader.get_destination_page_number(item)
            if page is not None and page >= 0:
                found[page + 1] = last

    walk(reader.outline, ())
    return found


def read_markdown(path: Path) -> list[Block]:
    """Headings set the path; paragraphs, list items, table rows and code blocks are blocks."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(read_text(path))
    heading: list[str] = []
    blocks: list[Block] = []
    row: list[str] | None = None  # the cells of the table row being read
    for i, token in enumerate(tokens):
        path_now = tuple(h for h in heading if h)
        if token.type == "heading_open":
            heading = nest(heading, int(token.tag[1:]), tokens[i + 1].content)
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            add_block(blocks, " | ".join(row), path_now)
            row = None
        elif token.type == "inline" and row is not None:
            row.append(token.content.strip())
        elif (token.type == "inline" and tokens[i - 1].type != "heading_open") or token.type in (
            "fence",
            "code_block",
        ):
            add_block(blocks, token.content, path_now)
    return merge_rows(blocks)


def nest(heading: list[str], level: int, title: str) -> list[str]:
    """The heading path after a level-``level`` heading ``title`` (1: outermost); a skipped level stays empty."""
    return [*heading[: level - 1], *[""] * max(0, level - 1 - len(heading)), title]


def merge_rows(blocks: list[Block]) -> list[Block]:
    """Table cells and list items of one section, each a short block, joined a line each, so that a
    section reads as paragraphs rather than a word per block."""
    merged: list[Block] = []
    for b in blocks:
        prev = merged[-1] if merged else None
        if prev and prev.heading == b.heading and len(b.text) < 80 and len(prev.text) < 400:
            merged[-1] = Block(f"{prev.text}\n{b.text}", b.page, b.heading)
        else:
            merged.append(b)
    return merged


def add_block(blocks: list[Block], text: str, heading: tuple[str, ...], page: int = 0) -> None:
    text = clean(text)
    if text:
        blocks.append(Block(text, page, heading))


HTML_SKIPPED = ("script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form")
HTML_BLOCKS = ("p", "li", "pre", "blockquote", "tr", "dd", "dt", "figcaption", "caption")
HTML_CONTAINERS = ("div", "section", "article", "main", "aside")  # their own text, when they hold no block


def read_html(path: Path) -> list[Block]:
    """h1-h6 set the heading path; paragraphs, list items, table rows, preformatted text and the text of a
    div/section/article that holds no such block are blocks."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(read_text(path), "html.parser")
    for tag in soup(HTML_SKIPPED):
        tag.decompose()
    heading: list[str] = []
    blocks: list[Block] = []
    headings = ["h1", "h2", "h3", "h4", "h5", "h6"]
    for tag in soup.find_all([*headings, *HTML_BLOCKS, *HTML_CONTAINERS]):
        if tag.name in HTML_CONTAINERS and tag.find([*headings, *HTML_BLOCKS, *HTML_CONTAINERS]):
            continue  # a wrapper: its blocks are read one by one
        if tag.name[0] == "h" and tag.name[1:].isdigit():
            heading = nest(heading, int(tag.name[1:]), clean(tag.get_text(" ")))
        elif tag.name == "tr":
            cells = [clean(cell.get_text(" ")) for cell in tag.find_all(["td", "th"])]
            add_block(blocks, " | ".join(cells), tuple(h for h in heading if h))
        elif not tag.find_parent(HTML_BLOCKS):  # a <p> inside an <li> is read once, with its item
            add_block(blocks, tag.get_text(" "), tuple(h for h in heading if h))
    if not blocks and soup.body:
        add_block(blocks, soup.body.get_text("\n"), ())
    return merge_rows(blocks)


def read_txt(path: Path) -> list[Block]:
    """Blank-line-separated paragraphs, no headings."""
    blocks: list[Block] = []
    for paragraph in re.split(r"\n\s*\n", read_text(path)):
        add_block(blocks, paragraph, ())
    return blocks


def read_text(path: Path) -> str:
    """A text file's content: UTF-8 (with or without BOM), else CP949, the legacy Korean Windows encoding."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Unreadable("text is neither UTF-8 nor CP949")


OUTLINE_STYLE = re.compile(r"^(?:개요|Outline|Heading|제목)\s*(\d+)$", re.IGNORECASE)


def read_hwpx(path: Path) -> list[Block]:
    """Paragraphs of every section; a paragraph whose style is "개요 N" / "Outline N" is a heading of level N."""
    import zipfile

    from hwpx import HwpxDocument

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            document = HwpxDocument.open(path)
            levels = {}
            for style_id, style in document.styles.items():
                match = OUTLINE_STYLE.match(str(style.name or "")) or OUTLINE_STYLE.match(
                    str(style.eng_name or "")
                )
                if match:
                    levels[str(style_id)] = int(match.group(1))
            paragraphs = []  # (style id, text); a table is one paragraph per row, its cells joined by " | "
            for p in document.paragraphs:
                paragraphs.append((str(p.style_id_ref), p.text or ""))
                for table in p.tables:
                    paragraphs += [
                        ("", " | ".join(clean(c.text or "") for c in row.cells)) for row in table.rows
                    ]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise Unreadable(f"not a readable HWPX file ({type(e).__name__}: {str(e)[:120]})") from None
    except Exception as e:  # noqa: BLE001 - python-hwpx raises its own types for broken packages
        raise Unreadable(f"not a readable HWPX file ({type(e).__name__}: {str(e)[:120]})") from None
    heading: list[str] = []
    blocks: list[Block] = []
    for style, text in paragraphs:
        level = levels.get(style)
        if level and clean(text):
            heading = nest(heading, level, clean(text))
        else:
            add_block(blocks, text, tuple(h for h in heading if h))
    return merge_rows(blocks)


READERS = {
    ".pdf": read_pdf,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".txt": read_txt,
    ".hwpx": read_hwpx,
}


def read_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` by its extension; Unreadable when it has none to give."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise Unreadable(
            f"unsupported file type '{path.suffix or '(none)'}' (supported: {', '.join(SUPPORTED)})"
        )
    blocks = reader(path)
    if not blocks:
        raise Unreadable("no text")
    return blocks


# ----------------------------------------------------------------------------- chunking


def sections(blocks: list[Block]) -> list[tuple[int, tuple[str, ...], int, str]]:
    """Runs of blocks with the same page and heading as (page, heading, start offset in the page text, text)."""
    out: list[tuple[int, tuple[str, ...], int, str]] = []
    offset, page = 0, None
    for b in blocks:
        if b.page != page:
            offset, page = 0, b.page
        start = offset
        offset += len(b.text) + len(BLOCK_SEPARATOR)
        if out and out[-1][0] == b.page and out[-1][1] == b.heading:
            p, h, s, text = out[-1]
            out[-1] = (p, h, s, text + BLOCK_SEPARATOR + b.text)
        else:
            out.append((b.page, b.heading, start, b.text))
    return out


def break_strength(text: str, before: tuple[int, int], after: tuple[int, int] | None) -> int:
    """How good a cut is between two tokens: 4 paragraph, 3 sentence, 2 line, 1 space, 0 inside a word.
    (A SentencePiece token's span may begin with the space before it.)"""
    if after is None:
        return 4
    start = after[0]
    while start < after[1] and text[start].isspace():
        start += 1
    gap = text[before[1] : max(before[1], start)]
    if "\n\n" in gap:
        return 4
    if gap.isspace() and text[before[1] - 1] in ".?!。":
        return 3
    if "\n" in gap:
        return 2
    return 1 if gap else 0


def windows(
    text: str, offsets: list[tuple[int, int]], max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """Character spans of ``text`` of at most ``max_tokens`` tokens each (``offsets``: each token's span),
    cut at the strongest break in the second half of each window; the next window starts ``overlap``
    tokens before the cut, at a word start."""
    n = len(offsets)
    if n <= max_tokens:
        return [(0, len(text))] if text.strip() else []
    strength = [break_strength(text, offsets[t], offsets[t + 1] if t + 1 < n else None) for t in range(n)]
    spans, i = [], 0
    while i < n:
        j = min(i + max_tokens, n)
        if j == n:
            cut = n - 1
        else:
            low = i + max_tokens // 2
            cut = max(range(low, j), key=lambda t: (strength[t], t))
        spans.append((offsets[i][0], offsets[cut][1]))
        if cut == n - 1:
            break
        nxt = max(cut + 1 - overlap, i + 1)
        while nxt <= cut and strength[nxt - 1] == 0:
            nxt += 1  # start at a word, not inside one
        i = nxt
    return spans


def chunk_blocks(blocks: list[Block], tokenizer, max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` tokens of ``tokenizer`` (a ``tokenizers.Tokenizer``) counting the
    heading path, which is embedded with the chunk; never across a page or a heading."""
    chunks = []
    for page, heading, start, text in sections(blocks):
        head = HEADING_SEPARATOR.join(heading)
        budget = max(
            16, max_tokens - (len(tokenizer.encode(head, add_special_tokens=False).ids) if head else 0)
        )
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        for s, e in windows(text, offsets, budget, min(overlap, budget // 4)):
            piece = text[s:e]
            lead = len(piece) - len(piece.lstrip())
            piece = piece.strip()
            if piece:
                chunks.append(Chunk(piece, page, head, start + s + lead, start + s + lead + len(piece)))
    return chunks


def embedded_text(chunk_heading: str, text: str) -> str:
    """What is embedded and matched for a chunk: its heading path, then its text."""
    return f"{chunk_heading}\n{text}" if chunk_heading else text
