"""Index a folder of technical documents for search: parse, chunk, embed, and store them in LanceDB.

    uv run python -m src.index --docs data/docs --model outputs/pipeline/model --index outputs/doc_index
    uv run python -m src.index --docs data/docs --model outputs/pipeline/model --index outputs/doc_index \\
        --base_model e5-small-offline      # also embed with the base model, for side-by-side comparison

Flow: 1. scan --docs (PDF, Markdown, HTML, TXT, HWPX; src.documents reads them) and hash every file;
2. compare with the index's record: only new and changed files are read, chunked and embedded, and the
chunks of changed and deleted files are removed; 3. embed with --model (and --base_model), the document
prompt; 4. write each model's LanceDB table (vectors, BM25 full-text index over Kiwi morphemes, an ANN index
from ANN_MIN_ROWS chunks on, built anew when the table outgrows it; the M3 sparse weights when the model has
the head); 5. commit: ``index.json`` is replaced atomically and names each table's version and ANN settings.

Readers open exactly the versions ``index.json`` names, so an interrupted run (Ctrl-C, a crash, a full
disk) leaves the previous index as it was, and the next run starts again from it. The index records the
model that built it (its folder, a SHA-256 of its weight, tokenizer and configuration files, and the
precision of its backend) and refuses to mix: a run or a search with another model is an error.

A file that cannot be read (a scanned PDF without text, an encrypted or corrupt file, an unknown
extension) is skipped with its reason, and the summary counts indexed, unchanged, removed and skipped files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from src import cli
from src.data import DataError, atomic_path, file_digest
from src.documents import SUPPORTED, Chunk, Unreadable, chunk_blocks, embedded_text, read_blocks

os.environ.setdefault("LANCEDB_LOG", "error")  # its Rust side logs routine notices at WARN

FORMAT = 1
META = "index.json"
DATABASE = "lancedb"
TABLES = {"model": "chunks", "compare": "chunks_compare"}  # role -> LanceDB table
DEFAULT_CHUNK_TOKENS = 512  # bge-m3 reads 8192, but a chunk is a passage to find and to show
ANN_MIN_ROWS = 20_000  # below this, exact (flat) search is fast enough and has perfect recall
ANN_PARTITIONS_ROWS = 4096  # about this many chunks per IVF partition
ANN_NPROBES = 32  # partitions searched per query (bench/index_scale.py: recall@10 0.99 at 100k chunks)
ANN_REFINE = 4  # re-rank this many times the requested hits with full vectors
KEEP_UNTIL_COMMIT = timedelta(days=36500)  # compaction inside a run deletes no old version ...
KEEP_VERSIONS = timedelta(days=7)  # ... and after its commit, versions older than this are deleted
CANDIDATES = 50  # hits each retriever contributes to a fusion
RRF_K = 60  # reciprocal-rank fusion: score = sum 1 / (RRF_K + rank)
FUSIONS = ("weighted", "rrf")  # weighted first: the default (bench/hybrid_fusion.py, dev part)
BM25_WEIGHT = 0.2  # the lexical side's weight in the default hybrid (bench/hybrid_fusion.py, dev part)
MODES = ("hybrid", "dense", "bm25", "sparse")
NOT_WEIGHTS = ("README.md", "training_summary.json")  # model-folder files that do not change embeddings


class IndexError_(cli.UserError):  # noqa: N801 - "IndexError" is a builtin
    """The index folder is missing, damaged, or was built by another model."""


# ----------------------------------------------------------------------------- the model's identity


def model_fingerprint(folder: Path) -> str:
    """SHA-256 over the files that decide a model's embeddings: weights, tokenizer and module configs
    (not the ONNX export, the README or the training summary)."""
    return file_digest(
        folder, skip=lambda rel: rel.parts[0] == "onnx" or rel.name in NOT_WEIGHTS or rel.name.startswith(".")
    )


def precision(backend: str) -> str:
    """Backends whose embeddings are interchangeable share a precision: torch and ONNX fp32 agree to 1e-5."""
    return "int8" if backend == "onnx-int8" else "fp32"


def identity(name: str, folder: Path, backend: str) -> dict:
    return {"name": name, "fingerprint": model_fingerprint(folder), "precision": precision(backend)}


def check_identity(recorded: dict, actual: dict, role: str, index: Path) -> None:
    """IndexError_ unless ``actual`` (a model about to write or query) is the model that built the table."""
    if recorded["fingerprint"] != actual["fingerprint"] or recorded["precision"] != actual["precision"]:
        raise IndexError_(
            f"{index}: the {role} embeddings were made by {recorded['name']} ({recorded['precision']}, "
            f"sha256 {recorded['fingerprint'][:12]}), not by {actual['name']} ({actual['precision']}, sha256 "
            f"{actual['fingerprint'][:12]}); embeddings of two models cannot be mixed: use another --index, "
            "or --rebuild to re-embed everything"
        )


# ----------------------------------------------------------------------------- the record


@dataclass
class Meta:
    """``index.json``: what the index holds; the commit point of every run."""

    chunk_tokens: int
    overlap_tokens: int
    files: dict[str, dict] = field(default_factory=dict)  # relative path -> {sha256, chunks}
    skipped: dict[str, dict] = field(default_factory=dict)  # relative path -> {reason, sha256 if it was read}
    tables: dict[str, dict] = field(default_factory=dict)  # role -> {table, name, fingerprint, ..., version}
    text_tokens: int | None = None  # the text budget: chunk_tokens less the longest prompt (None: older)

    def to_json(self) -> dict:
        return {"format": FORMAT, "chunk_tokens": self.chunk_tokens, "overlap_tokens": self.overlap_tokens,
                "text_tokens": self.text_tokens, "tables": self.tables, "files": self.files,
                "skipped": self.skipped}  # fmt: skip


def read_meta(index: Path) -> Meta | None:
    """The committed record, None for a folder never committed to, IndexError_ for a damaged one."""
    path = index / META
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise IndexError_(
                f"{path}: index format {raw.get('format')!r}, this toolkit reads {FORMAT}; --rebuild"
            )
        text_tokens = raw.get("text_tokens")
        return Meta(int(raw["chunk_tokens"]), int(raw["overlap_tokens"]), dict(raw["files"]),
                    {k: dict(v) for k, v in raw.get("skipped", {}).items()}, dict(raw["tables"]),
                    None if text_tokens is None else int(text_tokens))  # fmt: skip
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise IndexError_(f"{path}: not an index record ({type(e).__name__}: {e})") from None


def write_meta(index: Path, meta: Meta) -> None:
    with atomic_path(index / META) as tmp:
        tmp.write_text(json.dumps(meta.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- scanning


@dataclass
class Scan:
    hashes: dict[str, str]  # relative path -> sha256 of every supported file
    unsupported: dict[str, str]  # relative path -> reason


def scan(docs: Path) -> Scan:
    """Every visible file under ``docs``: supported ones hashed, the others listed as skipped."""
    hashes, unsupported = {}, {}
    for f in sorted(docs.rglob("*")):
        rel = f.relative_to(docs)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if f.is_symlink() and not f.exists():
            unsupported[rel.as_posix()] = "broken link"
        elif not f.is_file():
            continue
        elif f.suffix.lower() in SUPPORTED:
            try:
                hashes[rel.as_posix()] = file_digest(f)
            except OSError as e:
                unsupported[rel.as_posix()] = f"cannot read ({e.strerror or e})"
        else:
            unsupported[rel.as_posix()] = f"unsupported file type ({f.suffix or 'no extension'})"
    return Scan(hashes, unsupported)


# ----------------------------------------------------------------------------- embedding


@dataclass
class Embedder:
    """A model ready to embed chunks and queries; ``m3`` answers the sparse mode of a BGE-M3 model."""

    name: str
    folder: Path
    backend: str
    model: object  # SentenceTransformer or OnnxEncoder
    m3: object | None  # BGEM3FlagModel or OnnxEncoder, for a model with the M3 heads
    tokenizer: object  # tokenizers.Tokenizer of the model folder

    @functools.cached_property
    def identity(self) -> dict:
        return identity(self.name, self.folder, self.backend)

    @property
    def document_prompt(self) -> str:
        """The text put before every document (e5: "passage: "; bge-m3: none)."""
        return "" if self.m3 is not None else (getattr(self.model, "prompts", None) or {}).get("document", "")

    def documents(self, texts: list[str], batch_size: int, max_tokens: int):
        """Unit vectors [n, dim] float32 of ``texts`` as documents, and their M3 lexical weights (or None);
        ``max_tokens``: the chunk length the texts were cut to, prompt and special tokens included."""
        if self.m3 is not None:
            from src import m3

            out = m3.encode(self.m3, texts, batch_size, max_length=max_tokens)
            return out.dense, out.sparse
        vectors = self.model.encode_document(texts, batch_size=batch_size, normalize_embeddings=True,
                                             convert_to_numpy=True, show_progress_bar=len(texts) > batch_size)  # fmt: skip
        return np.asarray(vectors, dtype=np.float32), None

    def query(self, text: str):
        """The unit vector [dim] of ``text`` as a query, and its M3 lexical weights (or None)."""
        if self.m3 is not None:
            from src import m3

            out = m3.encode(self.m3, [text], 1, max_length=128)
            return out.dense[0], out.sparse[0]
        vector = self.model.encode_query([text], normalize_embeddings=True, convert_to_numpy=True)[0]
        return np.asarray(vector, dtype=np.float32), None


def load_embedder(name: str, backend: str = "torch") -> Embedder:
    """The model ``name`` (folder, Hub id or e5-small-offline) with its tokenizer; ModelNotFound if it cannot load."""
    from tokenizers import Tokenizer

    from src import m3
    from src.base_model import ModelNotFound
    from src.search import load

    model, folder = load(name, backend)
    if not (folder / "tokenizer.json").is_file():
        raise ModelNotFound(f"{folder}: no tokenizer.json (chunks are sized in the model's tokens)")
    m3_model = None
    if m3.is_m3(folder):
        m3.require_flagembedding(folder)
        m3_model = m3.load(folder) if backend == "torch" else model
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()  # a saved tokenizer may cut at the model's length: chunking must see all text
    tokenizer.no_padding()
    return Embedder(name, folder, backend, model, m3_model, tokenizer)


def index_embedders(doc_index: DocIndex, model: str | None = None, base_model: str | None = None,
                    backend: str | None = None) -> dict[str, Embedder]:  # fmt: skip
    """The models that search ``doc_index``: "model" (default: the one that built it, on its backend) and,
    with ``base_model``, "compare" (on PyTorch); each checked against the embeddings it will search."""
    recorded = doc_index.meta.tables["model"]
    chosen = {
        "model": (model or recorded["folder"], backend or (None if model else recorded["backend"]) or "torch")
    }
    if base_model:
        chosen["compare"] = (base_model, "torch")
    embedders = {}
    for role, (name, role_backend) in chosen.items():
        embedders[role] = load_embedder(name, role_backend)
        doc_index.check(role, embedders[role])
    return embedders


def document_tokens(folder: Path) -> int:
    """The most tokens the model reads of a document, special tokens and prompt included
    (sentence-transformers' document_length or max_seq_length; 512 when the folder says neither)."""
    config = folder / "sentence_bert_config.json"
    raw = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    return int(raw.get("document_length") or raw.get("max_seq_length") or 512)


def morphemes(texts: list[str]) -> list[str]:
    """Kiwi content morphemes of each text, lower-cased and space-joined: what BM25 matches."""
    from src.evaluate import kiwi_tokens

    return [" ".join(tokens) for tokens in kiwi_tokens(texts)]


# ----------------------------------------------------------------------------- rows


def chunk_id(rel: str, n: int) -> str:
    return f"{hashlib.sha1(rel.encode()).hexdigest()[:12]}-{n:05d}"


def folder_of(rel: str) -> str:
    return rel.rpartition("/")[0]


def schema(dim: int, sparse: bool):
    import pyarrow as pa

    fields = [("chunk_id", pa.string()), ("file", pa.string()), ("folder", pa.string()), ("page", pa.int32()),
              ("heading", pa.string()), ("start", pa.int32()), ("end", pa.int32()), ("text", pa.string()),
              ("tokens", pa.string()), ("file_sha", pa.string()), ("vector", pa.list_(pa.float32(), dim))]  # fmt: skip
    if sparse:
        fields += [("sparse_ids", pa.list_(pa.int32())), ("sparse_weights", pa.list_(pa.float32()))]
    return pa.schema(fields)


@dataclass
class FileChunks:
    rel: str
    sha: str
    chunks: list[Chunk]


def rows(files: list[FileChunks], vectors: np.ndarray, sparse: list[dict] | None, tokens: list[str]):
    """One Arrow table of every chunk of ``files``, in order, with its vector [n, dim]."""
    import pyarrow as pa

    flat = [(f, n, c) for f in files for n, c in enumerate(f.chunks)]
    columns = {
        "chunk_id": [chunk_id(f.rel, n) for f, n, _ in flat],
        "file": [f.rel for f, _, _ in flat],
        "folder": [folder_of(f.rel) for f, _, _ in flat],
        "page": [c.page for _, _, c in flat],
        "heading": [c.heading for _, _, c in flat],
        "start": [c.start for _, _, c in flat],
        "end": [c.end for _, _, c in flat],
        "text": [c.text for _, _, c in flat],
        "tokens": tokens,
        "file_sha": [f.sha for f, _, _ in flat],
        "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]
        ),
    }
    if sparse is not None:
        columns["sparse_ids"] = [list(map(int, s)) for s in sparse]
        columns["sparse_weights"] = [list(map(float, s.values())) for s in sparse]
    return pa.table(columns, schema=schema(vectors.shape[1], sparse is not None))


def quoted(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


# ----------------------------------------------------------------------------- tables


def connect(index: Path):
    import lancedb

    return lancedb.connect(str(index / DATABASE))


def write_table(db, name: str, committed: int | None, table_schema, remove: list[str], new_rows,
                built: dict | None = None) -> tuple[int, dict | None, str]:  # fmt: skip
    """Apply one run's changes to table ``name``, starting from its ``committed`` version (None: a new
    table): delete the chunks of the files in ``remove``, add ``new_rows``, bring the indexes up to date
    (``built``: the ANN settings the committed version was indexed with). Returns the version to commit,
    its ANN settings and what happened to its ANN index ("" if nothing); what readers see changes only
    when index.json names them."""
    if committed is None or name not in db.list_tables().tables:
        table = db.create_table(name, schema=table_schema, mode="overwrite")
    else:
        table = db.open_table(name)
        if table.version != committed:
            try:
                table.restore(committed)  # an interrupted run's writes are dropped
            except (ValueError, RuntimeError, OSError) as e:
                raise IndexError_(f"{db.uri}: version {committed} of table {name} is gone ({one_line(e)}); "
                                  "--rebuild to index everything again") from None  # fmt: skip
    for start in range(0, len(remove), 500):
        table.delete(f"file IN ({quoted(remove[start : start + 500])})")
    if new_rows is not None and new_rows.num_rows:
        table.add(new_rows)
    ann, note = refresh_indexes(table, built)
    return table.version, ann, note


def ann_settings(rows: int, dim: int) -> dict | None:
    """The ANN index a table of ``rows`` vectors of ``dim`` floats should have; None: none (exact search)."""
    if rows < ANN_MIN_ROWS:
        return None
    return {"type": "IVF_PQ", "distance": "cosine", "partitions": max(1, rows // ANN_PARTITIONS_ROWS),
            "sub_vectors": dim // 4}  # fmt: skip


def ann_outdated(built: dict | None, wanted: dict | None) -> bool:
    """True when an index built with ``built`` (None: no index) should be rebuilt as ``wanted``: the kind or
    the quantization differs, or the table grew or shrank so that the partition count is off by 2x or more
    (new rows go into the existing partitions, which grow slower to search and coarser to assign)."""
    if built is None or wanted is None:
        return built != wanted
    if any(built.get(key) != wanted[key] for key in wanted if key != "partitions"):
        return True
    partitions = built.get("partitions")
    if not isinstance(partitions, int) or partitions < 1:
        return True
    return not partitions / 2 < wanted["partitions"] < partitions * 2


def index_on(table, column: str):
    """The table's index over ``column`` alone (a lancedb IndexConfig, with ``name``), or None."""
    return next((i for i in table.list_indices() if i.columns == [column]), None)


def committed_table(db, recorded: dict):
    """The table of an ``index.json`` entry (``recorded``), at the version it names; lancedb's errors pass."""
    table = db.open_table(recorded["table"])
    table.checkout(recorded["version"])
    return table


def ann_plan(table, built: dict | None) -> tuple[dict | None, dict | None]:
    """(the ANN settings ``table`` has, those its size asks for). It has ``built`` (the recorded settings)
    when it has a vector index, {"type": "unknown"} for an index without a record (an older toolkit's),
    None without an index."""
    current = (built or {"type": "unknown"}) if index_on(table, "vector") else None
    return current, ann_settings(table.count_rows(), table.schema.field("vector").type.list_size)


def ann_stale(db, recorded: dict) -> bool:
    """True when the committed version of a table (``recorded``: its entry in index.json) has an outdated
    ANN index. False when the table cannot be opened: the write that needs it says why."""
    try:
        table = committed_table(db, recorded)
    except (ValueError, RuntimeError, OSError):
        return False
    return ann_outdated(*ann_plan(table, recorded.get("ann")))


def refresh_indexes(table, built: dict | None = None) -> tuple[dict | None, str]:
    """The BM25 index over ``tokens``, and the ANN index over ``vector`` that ann_settings asks for at the
    table's size (ann_plan, with ``built`` its recorded settings). An index that is not outdated takes new
    rows in incrementally (``optimize``); an outdated one is built anew, or dropped below ANN_MIN_ROWS.
    Returns the ANN settings now in force and what was done ("" if nothing)."""
    from lancedb.index import FTS, IvfPq

    if index_on(table, "tokens") is None:
        table.create_index("tokens", config=FTS(base_tokenizer="whitespace", lower_case=False, stem=False,
                           remove_stop_words=False, ascii_folding=False, with_position=False), replace=True)  # fmt: skip
    current, wanted = ann_plan(table, built)
    note = ""
    if ann_outdated(current, wanted):
        if wanted is None:
            table.drop_index(index_on(table, "vector").name)
            note = f"ANN index dropped (under {ANN_MIN_ROWS} chunks: exact search)"
        else:
            table.create_index("vector", replace=True, config=IvfPq(distance_type=wanted["distance"],
                               num_partitions=wanted["partitions"], num_sub_vectors=wanted["sub_vectors"]))  # fmt: skip
            note = f"ANN index built ({wanted['type']}, {wanted['partitions']} partitions)"
        current = wanted
    table.optimize(cleanup_older_than=KEEP_UNTIL_COMMIT)  # the committed version must outlive this run
    return current, note


def prune(db, tables: dict[str, dict]) -> dict[str, dict]:
    """After a commit, for the tables this run wrote (the latest version is the committed one): delete the
    files of versions older than KEEP_VERSIONS, so that repeated updates do not grow the folder without end.
    Returns ``tables`` with the versions that pruning made (the same rows), to commit in turn."""
    pruned = {}
    for role, recorded in tables.items():
        table = db.open_table(recorded["table"])
        table.optimize(cleanup_older_than=KEEP_VERSIONS)
        pruned[role] = {**recorded, "version": table.version}
    return pruned


# ----------------------------------------------------------------------------- ingestion


@dataclass
class Summary:
    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    chunks: int = 0
    seconds: float = 0.0
    ann: list[str] = field(default_factory=list)  # "table: ANN index built (...)" or "... dropped (...)"

    def lines(self) -> list[str]:
        out = [f"index: {len(self.indexed)} files indexed ({self.chunks} chunks), {self.unchanged} unchanged, "
               f"{len(self.removed)} removed, {len(self.skipped)} skipped, in {self.seconds:.1f} s"]  # fmt: skip
        out += [f"  {line}" for line in self.ann]
        reasons: dict[str, int] = {}
        for path, reason in sorted(self.skipped.items()):
            out.append(f"  skipped {path}: {reason}")
            kind = reason.split(" (")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        if reasons:
            out.append("  skipped by reason: " + ", ".join(f"{k}: {n}" for k, n in sorted(reasons.items())))
        return out


def read_changed(docs: Path, todo: list[str], hashes: dict[str, str], tokenizer, chunk_tokens: int,
                 overlap: int) -> tuple[list[FileChunks], dict[str, str]]:  # fmt: skip
    """The chunks of each file in ``todo``, and the reason of each file that could not be read."""
    from tqdm import tqdm

    files, skipped = [], {}
    for rel in tqdm(todo, desc="read", unit="file", disable=len(todo) < 10, file=sys.stderr):
        try:
            chunks = chunk_blocks(read_blocks(docs / rel), tokenizer, chunk_tokens, overlap)
        except Unreadable as e:
            skipped[rel] = str(e)
            continue
        except OSError as e:  # removed or locked since the scan
            skipped[rel] = f"cannot read ({e.strerror or e})"
            continue
        except Exception as e:  # noqa: BLE001 - a parser failing on one odd file must not stop the run
            skipped[rel] = f"parser error ({type(e).__name__}: {one_line(e)})"
            continue
        if chunks:
            files.append(FileChunks(rel, hashes[rel], chunks))
        else:
            skipped[rel] = "no text"
    return files, skipped


def texts_of(files: list[FileChunks]) -> list[str]:
    return [embedded_text(c.heading, c.text) for f in files for c in f.chunks]


def chunked(items: list, sizes: list[int]) -> list[list]:
    """``items`` cut into consecutive runs of ``sizes``."""
    bounds = np.cumsum([0, *sizes])
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def ingest(docs: Path, index: Path, embedders: dict[str, Embedder], chunk_tokens: int | None = None,
           overlap_tokens: int = 16, batch_size: int = 32, rebuild: bool = False) -> Summary:  # fmt: skip
    """Bring ``index`` up to date with ``docs``, embedding with ``embedders`` (role "model", and
    "compare" for a base to compare with); only new and changed files are embedded. Commits atomically."""
    t0 = time.perf_counter()
    embedders = dict(embedders)
    meta = None if rebuild else read_meta(index)
    primary = embedders["model"]
    limit = min(document_tokens(e.folder) for e in embedders.values())
    chunk_tokens = min(chunk_tokens or (meta.chunk_tokens if meta else DEFAULT_CHUNK_TOKENS), limit)
    prompts = {role: len(primary.tokenizer.encode(e.document_prompt).ids) for role, e in embedders.items()}
    text_tokens = chunk_tokens - max(prompts.values())  # prompt and special tokens are part of the chunk
    if meta is not None:
        if (meta.chunk_tokens, meta.overlap_tokens) != (chunk_tokens, overlap_tokens):
            raise IndexError_(f"{index}: chunks of {meta.chunk_tokens} tokens (overlap {meta.overlap_tokens}), "
                              f"not {chunk_tokens} ({overlap_tokens}); --rebuild to re-chunk everything")  # fmt: skip
        for role, embedder in embedders.items():
            if role in meta.tables:
                check_identity(meta.tables[role], embedder.identity, role, index)
        if meta.text_tokens is not None:  # every table is cut alike: the budget the index began with holds
            text_tokens = meta.text_tokens
            for role, n in prompts.items():
                if text_tokens + n > chunk_tokens:
                    raise IndexError_(f"{index}: its chunks hold {text_tokens} tokens of text, which with the "
                                      f"{role} model's document prompt ({n} tokens) exceed {chunk_tokens}; "
                                      "--rebuild to re-chunk everything")  # fmt: skip
    else:
        meta = Meta(chunk_tokens, overlap_tokens)
    found = scan(docs)
    known = {rel: v["sha256"] for rel, v in [*meta.skipped.items(), *meta.files.items()] if v.get("sha256")}
    changed = {rel for rel, sha in found.hashes.items() if known.get(rel) != sha}
    new_roles = {role for role in embedders if role not in meta.tables}
    todo = sorted(found.hashes) if new_roles else sorted(changed)
    gone = [rel for rel in meta.files if rel not in found.hashes]
    summary = Summary(
        unchanged=len([r for r in found.hashes if r in meta.files and r not in changed]), removed=gone
    )
    files, unreadable = read_changed(
        docs,
        [r for r in todo if r not in meta.skipped or r in changed],
        found.hashes,
        primary.tokenizer,
        text_tokens,
        overlap_tokens,
    )
    still = {r: v for r, v in meta.skipped.items() if r in found.hashes and r not in changed}  # not re-read
    skipped = {**{r: {"reason": why} for r, why in found.unsupported.items()},
               **{r: {"sha256": found.hashes[r], "reason": why} for r, why in unreadable.items()}, **still}  # fmt: skip
    summary.skipped = {r: v["reason"] for r, v in sorted(skipped.items())}
    summary.indexed = [f.rel for f in files if f.rel in changed]
    summary.chunks = sum(len(f.chunks) for f in files if f.rel in changed)
    tokens = dict(
        zip(
            [f.rel for f in files],
            chunked(morphemes(texts_of(files)), [len(f.chunks) for f in files]),
            strict=True,
        )
    )
    remove = sorted(set(meta.files) & changed) + gone
    for role, recorded in meta.tables.items():  # keep every table of the index current
        if role not in embedders and (files or remove):
            embedders[role] = load_embedder(recorded["folder"], recorded["backend"])
            check_identity(recorded, embedders[role].identity, role, index)
    db = connect(index)
    tables, written = dict(meta.tables), []
    for role, embedder in embedders.items():
        mine = files if role in new_roles else [f for f in files if f.rel in changed]
        committed, built = meta.tables.get(role, {}).get("version"), meta.tables.get(role, {}).get("ann")
        if committed is not None and not mine and not remove:
            continue  # nothing changed for this table
        texts = texts_of(mine)
        vectors, sparse = embedder.documents(texts, batch_size, chunk_tokens) if texts else (None, None)
        dim = embedder.model.get_embedding_dimension() if vectors is None else vectors.shape[1]
        new = rows(mine, vectors, sparse, [t for f in mine for t in tokens[f.rel]]) if texts else None
        version, ann, note = write_table(db, TABLES[role], committed, schema(dim, embedder.m3 is not None),
                                         [] if committed is None else remove, new, built)  # fmt: skip
        written.append(role)
        summary.ann += [f"{TABLES[role]}: {note}"] if note else []
        tables[role] = {"table": TABLES[role], **embedder.identity, "folder": str(embedder.folder),
                        "backend": embedder.backend, "dim": dim, "sparse": embedder.m3 is not None,
                        "ann": ann, "version": version}  # fmt: skip
    for role, recorded in meta.tables.items():
        if role not in written and ann_stale(db, recorded):  # only its ANN index to rebuild: no model needed
            version, ann, note = write_table(db, recorded["table"], recorded["version"], None, [], None,
                                             recorded.get("ann"))  # fmt: skip
            written.append(role)
            summary.ann.append(f"{recorded['table']}: {note}")
            tables[role] = {**recorded, "ann": ann, "version": version}
    files_now = {rel: v for rel, v in meta.files.items() if rel in found.hashes and rel not in changed}
    files_now.update({f.rel: {"sha256": f.sha, "chunks": len(f.chunks)} for f in files})
    committed = Meta(chunk_tokens, overlap_tokens, dict(sorted(files_now.items())),
                     dict(sorted(skipped.items())), tables, text_tokens)  # fmt: skip
    if committed.to_json() != meta.to_json():  # a run that changes nothing leaves index.json as it was
        write_meta(index, committed)
    if written:
        committed.tables = {**tables, **prune(db, {role: tables[role] for role in written})}
        write_meta(index, committed)
    summary.seconds = time.perf_counter() - t0
    return summary


# ----------------------------------------------------------------------------- retrieval


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    file: str
    page: int
    heading: str
    start: int
    end: int
    text: str
    score: float


HIT_COLUMNS = ["chunk_id", "file", "page", "heading", "start", "end", "text"]


def locked(method: Callable) -> Callable:
    """``method`` run under its object's ``_lock``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class DocIndex:
    """A committed index opened for search: each table at the version ``index.json`` names."""

    def __init__(self, path: Path):
        self.path = path
        self.stamp: tuple | None = None  # index.json's (inode, mtime, size) when it was read
        self.meta = Meta(0, 0)  # until refresh reads it
        self._tables: dict[str, object] = {}  # role -> table at the committed version
        self._sparse: dict[str, tuple] = {}  # role -> sparse_matrix's answer
        self._lock = threading.RLock()  # the demo's handlers run in threads
        self.refresh()
        self.db = connect(path)

    def refresh(self) -> bool:
        """Follow the latest commit: when ``index.json`` was replaced since it was read (a long-running reader,
        like the demo, and a new ``src.index`` run), read it again; the tables whose record changed open at
        their new versions. True when it did; IndexError_ when the folder is no longer an index."""
        with self._lock:
            try:
                stat = (self.path / META).stat()
                stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # an atomic replace is a new inode
            except OSError:
                stamp = None
            if stamp is not None and stamp == self.stamp:
                return False
            meta = read_meta(self.path)
            if meta is None:
                raise IndexError_(f"{self.path}: not an index (no {META}); build it with: python -m src.index "
                                  f"--docs DIR --model MODEL --index {self.path}")  # fmt: skip
            kept = {role for role, recorded in meta.tables.items() if self.meta.tables.get(role) == recorded}
            self._tables = {role: t for role, t in self._tables.items() if role in kept}
            self._sparse = {role: m for role, m in self._sparse.items() if role in kept}
            self.meta, self.stamp = meta, stamp
            return True

    @locked
    def table(self, role: str):
        if role not in self._tables:
            if role not in self.meta.tables:
                raise IndexError_(f"{self.path}: no {role} embeddings (index with --base_model to add them)")
            try:
                table = committed_table(self.db, self.meta.tables[role])
            except (ValueError, RuntimeError, OSError) as e:
                raise IndexError_(f"{self.path}: the {role} table cannot be opened ({one_line(e)})") from None
            self._tables[role] = table
        return self._tables[role]

    def check(self, role: str, embedder: Embedder) -> None:
        """IndexError_ unless ``embedder`` is the model whose embeddings the ``role`` table holds."""
        if role not in self.meta.tables:
            self.table(role)
        check_identity(self.meta.tables[role], embedder.identity, role, self.path)

    @locked
    def sparse_matrix(self, role: str):
        """The table's M3 lexical weights as a CSR matrix [n_chunks, vocabulary] and the chunk ids, loaded once."""
        if role not in self._sparse:
            from scipy.sparse import csr_matrix

            data = self.table(role).search().select(["chunk_id", "sparse_ids", "sparse_weights"]).to_arrow()
            ids = data["sparse_ids"].combine_chunks()
            weights = data["sparse_weights"].combine_chunks()
            indptr = np.asarray(ids.offsets)
            indices = np.asarray(ids.values, dtype=np.int64)
            matrix = csr_matrix((np.asarray(weights.values), indices, indptr),
                                shape=(len(data), int(indices.max(initial=0)) + 1))  # fmt: skip
            self._sparse[role] = (matrix, data["chunk_id"].to_pylist())
        return self._sparse[role]


def one_line(e: Exception) -> str:
    return cli.one_line(e)[:200]


def where_clause(files: list[str] | None = None, folders: list[str] | None = None) -> str | None:
    """SQL filter: chunks of any of ``files`` (relative paths) or under any of ``folders``; None: all."""
    parts = []
    if files:
        parts.append(f"file IN ({quoted(files)})")
    for folder in folders or []:
        folder = folder.strip("/")
        like = folder.replace("\\", "\\\\").replace("'", "''").replace("%", "\\%").replace("_", "\\_")
        parts.append(f"(folder = {quoted([folder])} OR folder LIKE '{like}/%')")
    return " OR ".join(parts) or None


def hits(table, order: str) -> list[Hit]:
    """Hits of an Arrow result, scored by column ``order`` (``_distance`` becomes cosine similarity)."""
    data = table.to_pylist()
    score = (lambda r: 1.0 - r["_distance"]) if order == "_distance" else (lambda r: float(r[order]))
    return [Hit(**{k: r[k] for k in HIT_COLUMNS}, score=float(score(r))) for r in data]


def dense(table, vector: np.ndarray, k: int, where: str | None = None, exact: bool = False) -> list[Hit]:
    """Nearest chunks by cosine; through the ANN index when the table has one (``exact``: never)."""
    query = table.search(vector, vector_column_name="vector").distance_type("cosine")
    query = query.select([*HIT_COLUMNS, "_distance"]).limit(k)
    query = query.bypass_vector_index() if exact else query.nprobes(ANN_NPROBES).refine_factor(ANN_REFINE)
    if where:
        query = query.where(where, prefilter=True)
    return hits(query.to_arrow(), "_distance")


def bm25(table, text: str, k: int, where: str | None = None) -> list[Hit]:
    """Best chunks by BM25 over Kiwi morphemes of ``text`` (any morpheme may match); [] when it has none."""
    from lancedb.query import MatchQuery

    terms = morphemes([text])[0]
    if not terms:
        return []
    query = (
        table.search(MatchQuery(terms, "tokens"), query_type="fts").select([*HIT_COLUMNS, "_score"]).limit(k)
    )
    if where:
        query = query.where(where, prefilter=True)
    return hits(query.to_arrow(), "_score")


def sparse(
    index: DocIndex, role: str, weights: dict[int, float], k: int, where: str | None = None
) -> list[Hit]:
    """Best chunks by the M3 lexical score: the sum of weight products over the tokens they share."""
    matrix, ids = index.sparse_matrix(role)
    q = np.zeros(matrix.shape[1], dtype=np.float32)
    for token, w in weights.items():
        if token < len(q):
            q[token] = w
    scores = matrix @ q
    if where:
        allowed = set(
            index.table(role).search().where(where).select(["chunk_id"]).to_arrow()["chunk_id"].to_pylist()
        )
        scores = np.where([i in allowed for i in ids], scores, 0.0)
    best = [int(j) for j in np.argsort(-scores, kind="stable")[:k] if scores[j] > 0]
    if not best:
        return []
    found = index.table(role).search().where(f"chunk_id IN ({quoted([ids[j] for j in best])})")
    by_id = {r["chunk_id"]: r for r in found.select(HIT_COLUMNS).limit(len(best)).to_arrow().to_pylist()}
    return [
        Hit(**{c: by_id[ids[j]][c] for c in HIT_COLUMNS}, score=float(scores[j]))
        for j in best
        if ids[j] in by_id
    ]


def fuse(rankings: list[list[Hit]], method: str = "rrf", weights: list[float] | None = None) -> list[Hit]:
    """One ranking from several: reciprocal-rank fusion (sum of w / (RRF_K + rank)), or "weighted": the sum
    of w * score / (the ranking's best score)."""
    weights = weights or [1.0] * len(rankings)
    total: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        best = max((h.score for h in ranking), default=0.0)
        for rank, h in enumerate(ranking, start=1):
            part = w / (RRF_K + rank) if method == "rrf" else (w * h.score / best if best > 0 else 0.0)
            total[h.chunk_id] = total.get(h.chunk_id, 0.0) + part
            first.setdefault(h.chunk_id, h)
    order = sorted(total, key=lambda c: (-total[c], c))
    return [Hit(**{**first[c].__dict__, "score": total[c]}) for c in order]


def search(index: DocIndex, role: str, embedder: Embedder, text: str, k: int = 5, mode: str = "hybrid",
           fusion: str = "weighted", bm25_weight: float = BM25_WEIGHT, where: str | None = None) -> list[Hit]:  # fmt: skip
    """The top ``k`` chunks for a query: "dense", "bm25", "sparse" (M3 models) or "hybrid" (dense and BM25,
    and the sparse mode where the table has it, fused by ``fusion``; ``bm25_weight`` weighs the lexical side)."""
    table = index.table(role)
    if mode == "bm25":
        return bm25(table, text, k, where)
    vector, weights = embedder.query(text)
    if mode == "dense":
        return dense(table, vector, k, where)
    has_sparse = index.meta.tables[role].get("sparse") and weights is not None
    if mode == "sparse":
        if not has_sparse:
            raise IndexError_(
                f"{index.path}: the {role} model has no M3 sparse head; use dense, bm25 or hybrid"
            )
        return sparse(index, role, weights, k, where)
    depth = max(k, CANDIDATES)
    rankings = [dense(table, vector, depth, where), bm25(table, text, depth, where)]
    lexical = [bm25_weight]
    if has_sparse:
        rankings.append(sparse(index, role, weights, depth, where))
        lexical = [bm25_weight / 2, bm25_weight / 2]
    return fuse(rankings, fusion, [1 - bm25_weight, *lexical])[:k]


def snippet(text: str, query: str, width: int = 160) -> tuple[str, list[tuple[int, int]]]:
    """A window of about ``width`` characters of ``text`` around the query's words and morphemes, and the
    (start, end) spans in it to highlight."""
    terms = {t for t in re.split(r"\W+", query.lower()) if len(t) > 1}
    terms |= {t for t in morphemes([query])[0].split() if len(t) > 1}  # one syllable would mark inside words
    spans = []
    lower = text.lower()
    for term in terms:
        spans += [(m.start(), m.end()) for m in re.finditer(re.escape(term), lower)]
    spans = merged_spans(spans)
    if len(text) <= width:
        return text, spans
    centre = spans[0][0] if spans else 0
    start = max(0, min(centre - width // 4, len(text) - width))
    window = text[start : start + width]
    prefix, suffix = ("…" if start else ""), ("…" if start + width < len(text) else "")
    inside = [
        (a - start + len(prefix), b - start + len(prefix))
        for a, b in spans
        if a >= start and b <= start + width
    ]
    return prefix + window + suffix, inside


def marked(text: str, spans: list[tuple[int, int]], mark: Callable[[str], str],
           plain: Callable[[str], str] = str) -> str:  # fmt: skip
    """``text`` with each (start, end) span (character offsets) through ``mark`` and the rest through ``plain``
    (an escape, for HTML); a span overlapping the one before is skipped."""
    out, at = [], 0
    for a, b in sorted(spans):
        if a < at:
            continue
        out += [plain(text[at:a]), mark(text[a:b])]
        at = b
    out.append(plain(text[at:]))
    return "".join(out)


def merged_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


# ----------------------------------------------------------------------------- command line


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument(
        "--docs", type=cli.input_dir, required=True, help="folder of documents (searched recursively)"
    )
    p.add_argument(
        "--model", type=cli.model_name, required=True, help="model folder, Hub id or e5-small-offline"
    )
    p.add_argument("--base_model", type=cli.model_name, help="also embed with this model, to compare with")
    cli.add_backend(p)
    p.add_argument(
        "--index", type=cli.output_path, default=Path("outputs/doc_index"), help="the index folder"
    )
    p.add_argument("--chunk_tokens", type=cli.number(int, 32, 8192),
                   help="most model tokens per chunk, heading included (default: the model's document length)")  # fmt: skip
    p.add_argument("--overlap_tokens", type=cli.number(int, 0, 512), default=16,
                   help="tokens shared by consecutive chunks of one section")  # fmt: skip
    p.add_argument("--batch_size", type=cli.positive_int, default=32)
    p.add_argument(
        "--rebuild", action="store_true", help="re-read and re-embed every file (another model, chunking)"
    )
    p.add_argument(
        "--seed", type=int, default=42, help="unused by the index itself (it draws nothing at random)"
    )
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.index.exists() and not args.index.is_dir():
        raise DataError(args.index, "exists and is not a folder; choose another --index")
    if not (args.index / META).is_file() and not any(
        f.suffix.lower() in SUPPORTED for f in args.docs.rglob("*")
    ):
        raise DataError(args.docs, f"empty: no documents to index (supported: {', '.join(SUPPORTED)})")
    embedders = {"model": load_embedder(args.model, args.backend)}
    if args.base_model:
        embedders["compare"] = load_embedder(args.base_model, "torch")
    summary = ingest(args.docs, args.index, embedders, args.chunk_tokens, args.overlap_tokens, args.batch_size,
                     args.rebuild)  # fmt: skip
    print("\n".join(summary.lines()), file=sys.stderr)
    print(f"index: {args.index} (search it: python -m src.search --index {args.index} --query \"PWM이 뭐야?\")",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
