"""Semantic search, FAQ matching and term recommendation with a trained model folder.

    uv run python -m src.search --model outputs/pipeline/model --query "PWM이 뭐야?"
    uv run python -m src.search --model outputs/pipeline/model --query "강압 컨버터" --base_model e5-small-offline
    uv run python -m src.search --model outputs/pipeline/model --corpus faq.jsonl   # interactive prompt
    uv run python -m src.search --model outputs/pipeline/model --related "벅 컨버터"
    uv run python -m src.search --index outputs/doc_index --query "PWM이 뭐야?"   # a folder indexed by src.index

The corpus is the glossary by default (one passage per concept: term, English name, definition) or a
file: ``.txt`` (a passage per line), passage JSONL (src.synth_data's corpus: passage_id, concept_id,
category, text) or FAQ JSONL (question, answer; a user's question is matched against the FAQ questions,
both encoded as queries). Queries get the model's query prompt, passages its document prompt.
Corpus embeddings are cached in --cache_dir under a key of the model (its files' names, sizes and
modification times), the corpus content and the encoding mode, so a retrained model or an edited corpus
is re-indexed and anything else is reused. ``--bm25_weight`` mixes in the evaluation stage's BM25.

With ``--index`` (a folder that ``src.index`` built) queries search its document chunks: ``--mode`` hybrid
(dense and BM25 over Kiwi morphemes, fused by ``--fusion``), dense, bm25 or sparse (M3 models), limited to
``--file`` / ``--folder``; each hit shows its file, page, heading path and a snippet with the query's words
highlighted. The model defaults to the one that built the index, and another model is refused;
``--base_model`` searches the base model's embeddings of the same chunks (``src.index --base_model``).
``--related`` and a ``--corpus`` (an FAQ, say) work beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src import cli
from src import index as doc_search
from src.base_model import ModelNotFound, load_encoder, resolve_model
from src.data import (
    DataError,
    FaqEntry,
    GlossaryEntry,
    Passage,
    atomic_path,
    iter_json_lines,
    load_glossary,
    normalize_name,
    read_jsonl,
    read_text_lines,
)
from src.domain import Domain, load_domain

GLOSSARY = Path("data/glossary_ko.jsonl")
DEFAULT_MODEL = "outputs/bge-m3-kr"


@dataclass(frozen=True)
class Doc:
    """One searchable item: ``text`` is embedded, ``shown`` is printed; glossary concepts keep their names."""

    doc_id: str
    text: str
    shown: str
    category: str = ""
    names: tuple[str, ...] = ()


@dataclass
class Index:
    docs: list[Doc]
    embeddings: np.ndarray  # [n_docs, dim] float32 unit vectors
    as_queries: bool  # FAQ questions are encoded with the query prompt


def concept_doc(c: GlossaryEntry) -> Doc:
    names = ", ".join(x for x in (c.english, c.acronym) if x)
    head = f"{c.term} ({names})" if names else c.term
    text = f"{head}: {c.definition}" if c.definition else head
    return Doc(
        c.id, text, text, c.category, tuple(n for n in (c.term, c.english, c.acronym, *c.aliases) if n)
    )


def load_corpus(path: Path | None, domain: Domain | None = None) -> tuple[list[Doc], bool]:
    """The documents of ``path`` (the glossary when None) and whether they are encoded as queries (FAQ);
    a glossary is checked against ``domain`` (default: the default domain)."""
    path = path or GLOSSARY
    if path.suffix == ".txt":
        return [Doc(f"line{n}", text, text) for n, text in read_text_lines(path)], False
    first = next(iter_json_lines(path), None)
    if first is None:
        raise DataError(path, "file is empty (no JSON lines)")
    keys = set(first[1]) if isinstance(first[1], dict) else set()
    if "question" in keys:
        faq = read_jsonl(path, FaqEntry)
        return [Doc(f"faq{i}", e.question, f"{e.question} → {e.answer}") for i, e in enumerate(faq)], True
    if "term" in keys:
        return [concept_doc(c) for c in load_glossary(path, domain)], False
    if "text" in keys:
        return [Doc(p.passage_id, p.text, p.text, p.category) for p in read_jsonl(path, Passage)], False
    raise DataError(
        path,
        "unknown corpus format: expected 'question'/'answer' (FAQ), 'text' (passages) or 'term' (glossary)",
        1,
    )


def model_key(folder: Path) -> str:
    """Fingerprint of a model folder: every file's relative name, size and modification time."""
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def index_key(model_folder: Path, docs: list[Doc], as_queries: bool, backend: str = "torch") -> str:
    h = hashlib.sha256(f"{model_key(model_folder)}:{as_queries}:{backend}".encode())
    for d in docs:
        h.update(d.text.encode() + b"\0")
    return h.hexdigest()[:24]


def build_index(
    model, model_folder: Path, docs: list[Doc], as_queries: bool, cache_dir: Path, backend: str = "torch"
) -> Index:
    """Embed the corpus, or load the cached embeddings of the same model, backend, corpus and mode."""
    cache = cache_dir / f"{index_key(model_folder, docs, as_queries, backend)}.npy"
    if cache.is_file():
        print(f"index: reusing {cache}", file=sys.stderr)
        return Index(docs, np.load(cache), as_queries)
    encode = model.encode_query if as_queries else model.encode_document
    embeddings = encode([d.text for d in docs], batch_size=32, normalize_embeddings=True,
                        show_progress_bar=True, convert_to_numpy=True).astype(np.float32)  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.save(f, embeddings)
    print(f"index: {len(docs)} documents embedded, cached at {cache}", file=sys.stderr)
    return Index(docs, embeddings, as_queries)


def search(
    model, index: Index, queries: list[str], top_k: int, bm25_weight: float = 0.0
) -> list[list[tuple[int, float]]]:
    """Top-k (document index, score) per query; score = cosine, or with ``bm25_weight`` w:
    (1 - w) * cosine + w * BM25 / (the query's best BM25)."""
    scores = (
        model.encode_query(queries, normalize_embeddings=True, convert_to_numpy=True) @ index.embeddings.T
    )
    if bm25_weight > 0:
        from src.evaluate import bm25_scores

        lexical = bm25_scores(queries, [d.text for d in index.docs])
        best = lexical.max(axis=1, keepdims=True)
        scores = (1 - bm25_weight) * scores + bm25_weight * np.divide(
            lexical, best, where=best > 0, out=np.zeros_like(lexical)
        )
    top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return [[(int(j), float(scores[i, j])) for j in row] for i, row in enumerate(top)]


def find_concept(index: Index, term: str) -> int | None:
    """Index of the glossary concept one of whose names is ``term`` (spacing, case, hyphens ignored)."""
    key = normalize_name(term)
    return next((i for i, d in enumerate(index.docs) if key in map(normalize_name, d.names)), None)


def related(model, index: Index, term: str, top_k: int) -> list[tuple[int, float]]:
    """Concepts nearest to ``term``: a glossary concept is compared by its own embedding, any other text
    is encoded as a query; the concept itself and any concept named like ``term`` are left out."""
    found = find_concept(index, term)
    if found is not None:
        vector = index.embeddings[found]
    else:
        vector = model.encode_query([term], normalize_embeddings=True, convert_to_numpy=True)[0]
    scores = index.embeddings @ vector
    key = normalize_name(term)
    excluded = {i for i, d in enumerate(index.docs) if key in map(normalize_name, d.names)} | {found}
    order = [int(j) for j in np.argsort(-scores, kind="stable") if int(j) not in excluded]
    return [(j, float(scores[j])) for j in order[:top_k]]


# ----------------------------------------------------------------------------- output


def fit(text: str, width: int) -> str:
    """``text`` cut and padded to ``width`` terminal columns (Korean characters take two)."""
    out, used = "", 0
    for ch in text.replace("\n", " "):
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used + w > width - 1 and len(text) > len(out) + 1:
            return out + "…" + " " * (width - used - 1)
        out, used = out + ch, used + w
    return out + " " * (width - used)


def format_hits(index: Index, hits: list[tuple[int, float]], width: int) -> list[str]:
    return [f"{r:>2}. {s:.4f}  {fit(index.docs[j].shown, width)}" for r, (j, s) in enumerate(hits, start=1)]


def format_doc_hits(hits: list, query: str, width: int, marks: tuple[str, str] = ("«", "»")) -> list[str]:
    """Index hits (src.index.Hit) as "rank. score  file p.N > heading | snippet", the query's words marked."""
    lines = []
    for r, h in enumerate(hits, start=1):
        where = h.file + (f" p.{h.page}" if h.page else "") + (f" > {h.heading}" if h.heading else "")
        text = doc_search.marked(
            *doc_search.snippet(h.text, query, width), lambda part: marks[0] + part + marks[1]
        )
        lines.append(f"{r:>2}. {h.score:.4f}  {fit(where + ' | ' + text, width)}")
    return lines


def print_results(title: str, columns: dict[str, list[str]], width: int) -> None:
    """One block per query: each system's formatted hits in its own column."""
    print(f"\n{title}")
    names = list(columns)
    col = width + 12
    print("   ".join(fit(n, col) for n in names).rstrip())
    depth = max(len(lines) for lines in columns.values())
    for i in range(depth):
        row = [columns[n][i] if i < len(columns[n]) else "" for n in names]
        print("   ".join(fit(cell, col) for cell in row).rstrip())


# ----------------------------------------------------------------------------- command line


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates: how Python passes on undecodable bytes of the command line
    or of stdin under a C locale."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def non_empty_text(text: str) -> str:
    """An argparse type: a query or term with at least one non-space character, valid UTF-8."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty text")
    if not is_utf8(text):
        raise argparse.ArgumentTypeError("not valid UTF-8")
    return text


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument("--model", type=cli.model_name,
                   help=f"model folder, Hub id or e5-small-offline (default: the index's model, else {DEFAULT_MODEL})")  # fmt: skip
    p.add_argument("--base_model", type=cli.model_name, help="also show this model's results side by side")
    cli.add_backend(p, None, " (default: the index's, else torch)")
    p.add_argument("--corpus", type=cli.input_file,
                   help="corpus file (.txt, passage or FAQ JSONL, glossary); default: the glossary")  # fmt: skip
    p.add_argument("--templates", type=cli.input_file,
                   help="the domain file a glossary corpus is checked against (default: data/templates_ko.yaml)")  # fmt: skip
    p.add_argument("--query", type=non_empty_text, action="append",
                   help="a query (repeatable); none: read queries interactively")  # fmt: skip
    p.add_argument("--related", type=non_empty_text, action="append", metavar="TERM",
                   help="recommend concepts related to TERM")  # fmt: skip
    p.add_argument("--index", type=cli.input_dir, help="a document index built by python -m src.index")
    p.add_argument(
        "--mode", choices=doc_search.MODES, help="with --index: how chunks are retrieved (default: hybrid)"
    )
    p.add_argument("--fusion", choices=doc_search.FUSIONS,
                   help="with --index: weighted normalized scores (default), or reciprocal-rank fusion")  # fmt: skip
    p.add_argument(
        "--file", action="append", metavar="PATH", help="with --index: only this file (repeatable)"
    )
    p.add_argument(
        "--folder", action="append", metavar="DIR", help="with --index: only this folder (repeatable)"
    )
    p.add_argument("--top_k", type=cli.positive_int, default=5)
    p.add_argument("--bm25_weight", type=cli.probability,
                   help="hybrid: weight of the lexical side, 0-1 (default: 0 for a corpus, 0.2 for an --index)")  # fmt: skip
    p.add_argument("--cache_dir", type=cli.output_path, default=Path("outputs/index"))
    p.add_argument(
        "--width",
        type=cli.number(int, 20, 1000),
        help="columns of text shown per result (default: 60, 100 with --index)",
    )
    return p


def load(name: str, backend: str = "torch"):
    """The model's encoder (see base_model.load_encoder) and its local folder, or ModelNotFound."""
    folder = Path(resolve_model(name))
    if not (folder / "modules.json").is_file():
        raise ModelNotFound(f"{name}: not a sentence-transformers model folder (no modules.json)")
    return load_encoder(str(folder), backend), folder


def read_queries() -> list[str]:
    """Queries typed at a prompt (empty line or Ctrl-D ends) or piped one per line (UTF-8)."""
    try:
        lines = list(iter(_prompt, None)) if sys.stdin.isatty() else [line.strip() for line in sys.stdin]
    except UnicodeDecodeError as e:
        raise DataError("<stdin>", f"not valid UTF-8 (byte {e.start})") from None
    for number, line in enumerate(lines, start=1):
        if not is_utf8(line):
            raise DataError("<stdin>", "not valid UTF-8", number)
    return [line for line in lines if line]


def _prompt() -> str | None:
    """One query typed at the prompt; None at an empty line or Ctrl-D."""
    try:
        return input("질의> ").strip() or None
    except EOFError:
        return None


@dataclass
class System:
    """One model as the user sees it: its column title, the encoder, and its embeddings of what is searched."""

    title: str
    model: object
    folder: Path
    backend: str
    embedder: object = None  # src.index.Embedder, with --index
    role: str = "model"  # its table in the document index
    corpus: Index | None = None  # the corpus or glossary, when one is searched


def load_systems(doc_index, model: str | None, base_model: str | None, backend: str | None) -> list[System]:
    """The fine-tuned model (default: the index's, else DEFAULT_MODEL) and the base with ``base_model``;
    with a document index (src.index.DocIndex), each checked against the embeddings it will search."""
    if doc_index:
        embedders = doc_search.index_embedders(doc_index, model, base_model, backend)
        loaded = {role: (e.model, e.folder, e.backend, e) for role, e in embedders.items()}
    else:
        loaded = {"model": (*load(model or DEFAULT_MODEL, backend or "torch"), backend or "torch", None)}
        if base_model:
            loaded["compare"] = (*load(base_model), "torch", None)
    systems = []
    for role, (encoder, folder, role_backend, embedder) in loaded.items():
        title = (
            f"{'fine-tuned' if role == 'model' else 'base'} ({folder.name})" if base_model else folder.name
        )
        title += f" [{role_backend}]" if role_backend != "torch" else ""
        systems.append(System(title, encoder, folder, role_backend, embedder, role))
    return systems[::-1]  # base first, fine-tuned second: read left to right as before -> after


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    doc_index = doc_search.DocIndex(args.index) if args.index else None
    if not doc_index:
        used = [f for f, on in (("--mode", args.mode), ("--fusion", args.fusion), ("--file", args.file),
                                ("--folder", args.folder)) if on]  # fmt: skip
        if used:
            raise cli.UsageError(f"{', '.join(used)} need --index (a document index)")
    else:
        unknown = sorted(set(args.file or []) - set(doc_index.meta.files))
        if unknown:
            raise cli.UsageError(f"--file {unknown[0]}: not in the index (its paths are relative to --docs)")
    corpus = None  # read before any model loads: a bad corpus fails within a second
    if args.corpus or args.related or not doc_index:
        corpus = load_corpus(args.corpus if args.corpus or not args.related else None,
                             load_domain(args.templates) if args.templates else None)  # fmt: skip
    systems = load_systems(doc_index, args.model, args.base_model, args.backend)
    where = doc_search.where_clause(args.file, args.folder)
    width = args.width or (100 if doc_index else 60)
    if corpus:
        docs, as_queries = corpus
        for s in systems:
            s.corpus = build_index(s.model, s.folder, docs, as_queries, args.cache_dir, s.backend)
    for term in args.related or []:
        if find_concept(systems[0].corpus, term) is None and not systems[0].corpus.docs[0].names:
            raise cli.UsageError("--related needs the glossary corpus (no --corpus, or a glossary file)")
        columns = {s.title: format_hits(s.corpus, related(s.model, s.corpus, term, args.top_k), width)
                   for s in systems}  # fmt: skip
        print_results(f"관련 용어: {term}", columns, width)
    queries = args.query if args.query or args.related else read_queries()
    for q in queries or []:
        if doc_index:
            weight = doc_search.BM25_WEIGHT if args.bm25_weight is None else args.bm25_weight
            how = {"mode": args.mode or "hybrid", "fusion": args.fusion or "weighted", "bm25_weight": weight}
            columns = {s.title: format_doc_hits(doc_search.search(doc_index, s.role, s.embedder, q, args.top_k,
                                                                  where=where, **how), q, width)
                       for s in systems}  # fmt: skip
            print_results(f"문서 검색: {q}", columns, width)
        if args.corpus or not doc_index:
            weight = args.bm25_weight or 0.0
            columns = {s.title: format_hits(s.corpus, search(s.model, s.corpus, [q], args.top_k, weight)[0], width)
                       for s in systems}  # fmt: skip
            print_results(f"질의: {q}", columns, width)
    return 0


if __name__ == "__main__":
    sys.exit(main())
