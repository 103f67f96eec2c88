"""The document index (src/index.py) at scale: ingest throughput, query latency, ANN recall and the re-run.

It writes a synthetic corpus of about --chunks chunks into one temporary folder: Korean technical Markdown
files, one folder per glossary category, a section per glossary term whose paragraphs mix sentences of the
term's definitions and descriptions (data/glossary_ko.jsonl), of related terms and templated specification
sentences with random values (seeded by --seed). Then it runs the real ingest (src.index.ingest: scan and hash,
read and chunk, Kiwi morphemes, embed, LanceDB write, FTS and ANN indexes, commit) and prints one table:

* ingest throughput (chunks/s) of the whole ingest and of its parts (embedding vs. the rest: scan, read and
  chunk, Kiwi, write, FTS / ANN index builds, optimize), and the index size on disk (du of the index folder);
* query latency p50/p95 (ms) of dense, BM25 and hybrid search (src.index.search) over --queries Korean
  questions (glossary terms, aliases, acronyms and English names in question templates), the query encoding
  excluded: every query is encoded first and the retrieval calls are timed on the ready vectors. BM25 includes
  Kiwi's analysis of the query (src.index.bm25 runs it per query). Then where hybrid's time goes: Kiwi, the FTS
  search alone, dense at hybrid's depth, the text columns fetched for every candidate, fusion, and both searches
  run in parallel threads instead of one after the other;
* ANN recall@10 against exact search (``exact=True``) and latency for several ANN settings side by side:
  IVF_PQ as the ingest builds it (rows / ANN_PARTITIONS_ROWS partitions, dim / 4 sub-vectors) and variants
  (sqrt(rows) partitions; dim / 8 sub-vectors; IVF_HNSW_SQ), each with a grid of nprobes x refine_factor (ef
  for HNSW); p95 is given at k = 10 and at hybrid's depth (CANDIDATES), and the setting with the lowest p95 at
  hybrid's depth among those reaching --recall_target is recommended;
* the incremental re-run: one file changed (its time vs. that file's share of the full embedding time) and
  nothing changed.

Vectors (--vectors): "model" embeds every chunk with the model; honest, but the stand-in embeds about 4
chunks/s of 256 tokens on 2 CPU cores with ONNX int8, so 100k chunks take hours (use it on a GPU or many
cores). "sample" (the default) embeds --embed_sample chunks drawn at random with the model and times them: the
embedding rate, from which the whole ingest's throughput is projected (labelled so). Every other chunk gets the
vector of a random embedded chunk plus Gaussian noise with the embedded vectors' covariance (so it moves along
the directions real embeddings vary in, not uniformly), scaled so that a filled vector is as close to its
source as a real chunk is to its nearest real neighbour (the median cosine; both are printed). The vectors are
thus clustered around model-made ones, never uniform random; queries are always encoded with the model, and
recall is measured on these vectors. The changed file of the re-run is embedded with the model in both modes.

    uv run python bench/index_scale.py --chunks 5000 --embed_sample 300     # a few minutes
    uv run python bench/index_scale.py --chunks 100000                       # about an hour on 2 CPU cores
    uv run python bench/index_scale.py --chunks 100000 --vectors model      # every chunk embedded (GPU, or hours)
    uv run python bench/index_scale.py --indexes ivf_pq --nprobes 4 8 16 --refine 1 2 4

An ONNX backend on a model folder without ONNX files exports it first into a folder of links inside the
temporary folder (the model folder is not touched). The temporary folder (--tmp, default /tmp) is deleted at
the end, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src import index as idx  # noqa: E402
from src.documents import Block, chunk_blocks  # noqa: E402
from src.onnx_encoder import BACKENDS  # noqa: E402

GLOSSARY = ROOT / "data" / "glossary_ko.jsonl"
TITLES = {
    "passive": "수동 소자", "analog": "아날로그 회로", "semiconductor": "반도체 소자", "rf_comm": "RF·통신",
    "power_electronics": "전력전자", "digital_embedded": "디지털·임베디드", "electrical_machines": "전기기기",
    "signal_processing": "신호 처리", "control": "제어 공학", "power_systems": "전력 계통",
    "pcb_manufacturing": "PCB 제조", "sensors_measurement": "센서·계측", "electromagnetics": "전자기학",
    "electrical_installation": "전기 설비", "circuit_theory": "회로 이론", "instruments": "계측기",
    "protection_emc_safety": "보호·EMC·안전", "battery_bms": "배터리·BMS", "power_protection": "전력 보호",
}  # fmt: skip
KINDS = ("설계 가이드", "기술 노트", "적용 매뉴얼", "시험 절차서", "사양 검토서")
SPECS = [
    "{t}{은} 정격 전압 {v} V, 허용 전류 {a} A 조건에서 시험하였다.",
    "주위 온도 {c}°C에서 {t}의 특성 변화는 {p}% 이내로 관리한다.",
    "스위칭 주파수 {f} kHz에서 {t}의 손실은 약 {w} W로 측정되었다.",
    "{t} 선정 시 정격의 {p}%를 넘지 않도록 디레이팅을 적용한다.",
    "시험 결과 {t}의 응답 시간은 {m} ms, 오차는 ±{p}%였다.",
    "{t} 주변 배선은 {r} mm 이상 간격을 두고 접지면과 가깝게 배치한다.",
    "{t}의 입력 임피던스는 {o} Ω으로, 측정 회로의 부하 효과를 고려해야 한다.",
]  # fmt: skip
QUESTIONS = ["{x}{은} 무엇인가요?", "{x}의 동작 원리를 설명해 줘", "{x} 선정할 때 주의할 점은?", "{x} 정격 사양 보는 법",
             "{x}{이} 왜 필요한가요?", "{x} 뜻", "{x}의 주요 특성은?", "{x} 설계 시 고려 사항"]  # fmt: skip
INDEXES = ("ivf_pq", "ivf_pq_sqrt", "ivf_pq_coarse", "ivf_hnsw_sq")


# ----------------------------------------------------------------------------- the corpus


def josa(word: str, pair: str) -> str:
    """The particle of ``pair`` ("은는", "이가") that follows ``word``: the first after a final consonant."""
    last = word.rstrip(" )")[-1:] or "a"
    if "가" <= last <= "힣":
        return pair[0] if (ord(last) - 0xAC00) % 28 else pair[1]
    return pair[0] if last.isdigit() or last.lower() in "lmnr" else pair[1]


def fill_in(template: str, x: str, **values) -> str:
    return template.format(x=x, t=x, 은=josa(x, "은는"), 이=josa(x, "이가"), **values)


def load_glossary() -> list[dict]:
    return [json.loads(line) for line in GLOSSARY.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentences_of(entry: dict) -> list[str]:
    """The entry's definition sentences, and its descriptions (noun phrases) made into sentences."""
    out = []
    for text in entry["definitions"].values():
        out += [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    out += [
        fill_in("{t}{은} " + d.rstrip(".") + "이다.", entry["term"]) for d in entry.get("descriptions", [])
    ]
    return out


def spec_sentence(term: str, rng: random.Random) -> str:
    values = {"v": rng.choice([3.3, 5, 12, 24, 48, 230, 400]), "a": round(rng.uniform(0.1, 40), 1),
              "c": rng.choice([-40, -20, 25, 70, 85, 105, 125]), "p": rng.choice([1, 2, 5, 10, 20, 50, 80]),
              "f": rng.choice([20, 50, 100, 250, 500, 1000]), "w": round(rng.uniform(0.05, 30), 2),
              "m": rng.choice([0.1, 0.5, 1, 5, 20, 100]), "r": rng.choice([0.2, 0.5, 1, 2, 5]),
              "o": rng.choice([50, 75, 600, 1000, 10_000, 1_000_000])}  # fmt: skip
    return fill_in(rng.choice(SPECS), term, **values)


def section(entry: dict, related: list[dict], rng: random.Random) -> list[str]:
    """3-6 paragraphs of 3-6 sentences: the term's own, a related term's, and specification sentences."""
    own = sentences_of(entry)
    paragraphs = []
    for _ in range(rng.randint(3, 6)):
        lines = []
        for _ in range(rng.randint(3, 6)):
            draw = rng.random()
            if draw < 0.55:
                lines.append(rng.choice(own))
            elif draw < 0.8:
                lines.append(rng.choice(sentences_of(rng.choice(related))))
            else:
                lines.append(spec_sentence(entry["term"], rng))
        paragraphs.append(" ".join(lines))
    return paragraphs


def heading_of(entry: dict) -> str:
    return f"{entry['term']} ({entry['english']})" if entry.get("english") else entry["term"]


def write_corpus(docs: Path, entries: list[dict], chunks: int, per_file: int, tokenizer, chunk_tokens: int,
                 overlap: int, rng: random.Random) -> list[str]:  # fmt: skip
    """Markdown files under ``docs`` of about ``per_file`` chunks each until about ``chunks`` chunks (counted
    with the index's own chunker); returns the files' relative paths."""
    by_category: dict[str, list[dict]] = {}
    for e in entries:
        by_category.setdefault(e["category"], []).append(e)
    categories = sorted(by_category)
    files, total = [], 0
    while total < chunks:
        category = rng.choice(categories)
        title = f"{TITLES.get(category, category)} {rng.choice(KINDS)} {len(files) + 1:05d}"
        parts, count = [f"# {title}"], 0
        while count < per_file and total + count < chunks:
            entry = rng.choice(by_category[category])
            paragraphs = section(entry, by_category[category], rng)
            heading = (title, heading_of(entry))
            count += len(
                chunk_blocks([Block(p, 0, heading) for p in paragraphs], tokenizer, chunk_tokens, overlap)
            )
            parts += [f"## {heading[1]}", *paragraphs]
        rel = f"{category}/doc{len(files) + 1:05d}.md"
        (docs / category).mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        files.append(rel)
        total += count
    return files


def questions(entries: list[dict], n: int, rng: random.Random) -> list[str]:
    """``n`` distinct Korean questions about glossary terms (the term, an alias, the acronym or English name)."""
    out: set[str] = set()
    while len(out) < n:
        e = rng.choice(entries)
        names = [e["term"], *e.get("aliases", []), *[e[k] for k in ("acronym", "english") if e.get(k)]]
        out.add(fill_in(rng.choice(QUESTIONS), rng.choice(names)))
    return sorted(out, key=lambda q: rng.random())


# ----------------------------------------------------------------------------- timing the ingest


@dataclass
class Clock:
    """Seconds per part of one ingest."""

    parts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + seconds

    def get(self, name: str) -> float:
        return self.parts.get(name, 0.0)


def timed(fn: Callable, clock: Clock, name: str) -> Callable:
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock.add(name, time.perf_counter() - t0)

    return wrapper


@contextmanager
def clocked(clock: Clock):
    """src.index's steps timed into ``clock`` while an ingest runs: scan, read (and chunk), Kiwi, the model's
    fingerprint, Arrow rows, connect (and import) LanceDB, write (with the index refresh, told apart: FTS and ANN
    builds, optimize)."""
    names = {
        "scan": "scan",
        "read_changed": "read",
        "morphemes": "kiwi",
        "identity": "fingerprint",
        "rows": "rows",
        "write_table": "write",
        "connect": "import+connect",
    }
    originals = {name: getattr(idx, name) for name in [*names, "refresh_indexes"]}

    def refresh(table, built: dict | None = None) -> dict | None:
        create, optimize = table.create_index, table.optimize

        def create_index(column, *args, **kwargs):
            kind = "fts" if column == "tokens" else "ann"
            return timed(create, clock, kind)(column, *args, **kwargs)

        table.create_index, table.optimize = create_index, timed(optimize, clock, "optimize")
        try:
            return originals["refresh_indexes"](table, built)
        finally:
            del table.create_index, table.optimize

    for name, part in names.items():
        setattr(idx, name, timed(originals[name], clock, part))
    idx.refresh_indexes = refresh
    try:
        yield clock
    finally:
        for name, fn in originals.items():
            setattr(idx, name, fn)


@dataclass
class FillStats:
    target: float  # median cosine of an embedded chunk to its nearest other embedded chunk
    sigma: float
    achieved: float  # median cosine of a filled vector to its source


class Vectors:
    """``Embedder.documents`` timed, and in "sample" mode embedding only a sample of a large call (see the
    module's docstring); after ``fill_done`` every call embeds all its texts."""

    def __init__(self, documents: Callable, mode: str, sample: int, seed: int, clock: Clock):
        self.documents, self.mode, self.sample, self.clock = documents, mode, sample, clock
        self.rng = np.random.default_rng(seed)
        self.fill_done = mode == "model"
        self.embedded = 0
        self.stats: FillStats | None = None

    def __call__(self, texts: list[str], batch_size: int, max_tokens: int):
        if self.fill_done or len(texts) <= self.sample:
            t0 = time.perf_counter()
            vectors, sparse = self.documents(texts, batch_size, max_tokens)
            self.clock.add("embed", time.perf_counter() - t0)
            self.embedded += len(texts)
            return vectors, sparse
        picked = np.sort(self.rng.choice(len(texts), self.sample, replace=False))
        t0 = time.perf_counter()
        real, _ = self.documents([texts[i] for i in picked], batch_size, max_tokens)
        self.clock.add("embed", time.perf_counter() - t0)
        self.embedded += len(picked)
        t0 = time.perf_counter()
        rest = np.setdiff1d(np.arange(len(texts)), picked)
        vectors = np.empty((len(texts), real.shape[1]), dtype=np.float32)
        vectors[picked] = real
        vectors[rest], self.stats = fill(real, len(rest), self.rng)
        self.clock.add("fill", time.perf_counter() - t0)
        return vectors, None


def fill(real: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, FillStats]:
    """``n`` unit vectors: a random row of ``real`` plus noise ~ N(0, sigma^2 C), C the covariance of ``real``,
    sigma such that the cosine to the source is about the median nearest-neighbour cosine within ``real``."""
    s = len(real)
    cos = real @ real.T
    np.fill_diagonal(cos, -1.0)
    target = float(np.median(cos.max(axis=1)))
    centred = (real - real.mean(axis=0)) / math.sqrt(max(1, s - 1))  # noise = z @ centred has covariance C
    sigma = math.sqrt(max(1e-12, 1 / target**2 - 1) / float((centred**2).sum()))
    source = rng.integers(0, s, n)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for a in range(0, n, 8192):
        b = min(n, a + 8192)
        v = real[source[a:b]] + sigma * (rng.standard_normal((b - a, s), dtype=np.float32) @ centred)
        out[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    achieved = float(np.median(np.einsum("ij,ij->i", out, real[source])))
    return out, FillStats(target, sigma, achieved)


def du_mib(folder: Path) -> float:
    """Disk usage of ``folder`` in MiB, as du counts it (allocated blocks)."""
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20


# ----------------------------------------------------------------------------- timing queries


def pct(seconds: list[float]) -> tuple[float, float]:
    """(p50, p95) in ms."""
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 95) * 1000)


def time_each(fn: Callable, items: list, warm: int = 5) -> tuple[list[float], list]:
    """Seconds of ``fn(item)`` for each item (after ``warm`` untimed calls), and the results."""
    for item in items[:warm]:
        fn(item)
    seconds, results = [], []
    for item in items:
        t0 = time.perf_counter()
        results.append(fn(item))
        seconds.append(time.perf_counter() - t0)
    return seconds, results


class Encoded:
    """An Embedder for src.index.search whose query vectors were encoded before the timing."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def query(self, text: str):
        return self.vectors[text], None


def fts(table, terms: str, k: int, columns: list[str]):
    """src.index.bm25's FTS query on morphemes already made."""
    from lancedb.query import MatchQuery

    return table.search(MatchQuery(terms, "tokens"), query_type="fts").select(columns).limit(k).to_arrow()


def ann(table, vector, k: int, nprobes: int | None, refine: int | None, ef: int | None = None,
        columns: list[str] | None = None):  # fmt: skip
    """src.index.dense with explicit ANN settings (None: the library's default; nprobes None and refine None
    and ef None: exact search); ef is raised to k * refine where it is lower."""
    query = table.search(vector, vector_column_name="vector").distance_type("cosine")
    query = query.select(columns or [*idx.HIT_COLUMNS, "_distance"]).limit(k)
    if nprobes is None and refine is None and ef is None:
        query = query.bypass_vector_index()
    if nprobes:
        query = query.nprobes(nprobes)
    if refine and refine > 1:
        query = query.refine_factor(refine)
    if ef:
        query = query.ef(max(ef, k * (refine or 1)))  # lance refuses ef < the candidates it must return
    return query.to_arrow()


@dataclass
class AnnRow:
    label: str
    build: float | None
    recall: float
    p50: float
    p95: float
    p95_deep: float
    current: bool = False


def ann_rows(table, name: str, build: float | None, settings: list[dict], vectors: list, truth: list[set],
             deep: int, current: tuple | None = None) -> list[AnnRow]:  # fmt: skip
    rows = []
    for n, s in enumerate(settings):
        seconds, results = time_each(lambda v, s=s: ann(table, v, 10, **s), vectors)
        deep_seconds, _ = time_each(lambda v, s=s: ann(table, v, deep, **s), vectors)
        recall = float(np.mean([len(set(r["chunk_id"].to_pylist()) & t) / max(1, len(t))
                                for r, t in zip(results, truth, strict=True)]))  # fmt: skip
        knobs = " ".join(f"{k} {v}" for k, v in s.items() if v) or "exact"
        p50, p95 = pct(seconds)
        rows.append(AnnRow(f"{name}: {knobs}", build if n == 0 else None, recall, p50, p95, pct(deep_seconds)[1],
                           current is not None and current == (s.get("nprobes"), s.get("refine"))))  # fmt: skip
        print(f"  {rows[-1].label}: recall@10 {recall:.3f}, p95 {p95:.1f} ms", file=sys.stderr, flush=True)
    return rows


def build_index(table, kind: str, rows: int, dim: int) -> tuple[str, float, int]:
    """Replace the table's vector index by one of INDEXES; (description, build seconds, partitions)."""
    from lancedb.index import IvfHnswSq, IvfPq

    partitions = {"ivf_pq": max(1, rows // idx.ANN_PARTITIONS_ROWS), "ivf_pq_sqrt": max(1, round(math.sqrt(rows))),
                  "ivf_pq_coarse": max(1, rows // idx.ANN_PARTITIONS_ROWS), "ivf_hnsw_sq": max(1, rows // 250_000)}[kind]  # fmt: skip
    if kind == "ivf_hnsw_sq":
        config, text = (
            IvfHnswSq(distance_type="cosine", num_partitions=partitions),
            f"IVF_HNSW_SQ p={partitions}",
        )
    else:
        sub = dim // 8 if kind == "ivf_pq_coarse" else dim // 4
        config = IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub)
        text = f"IVF_PQ p={partitions} m={sub}"
    t0 = time.perf_counter()
    table.create_index("vector", config=config, replace=True)
    return text, time.perf_counter() - t0, partitions


# ----------------------------------------------------------------------------- the run


@dataclass
class Ingested:
    seconds: float
    clock: Clock
    chunks: int


def run_ingest(docs: Path, index: Path, embedder, args: argparse.Namespace) -> Ingested:
    clock = Clock()
    embedder.documents.clock = clock
    with clocked(clock):
        t0 = time.perf_counter()
        summary = idx.ingest(
            docs, index, {"model": embedder}, args.chunk_tokens, args.overlap_tokens, args.batch_size
        )
        seconds = time.perf_counter() - t0
    print("\n".join(summary.lines()), file=sys.stderr, flush=True)
    return Ingested(seconds, clock, summary.chunks)


def with_onnx(model: Path, work: Path, backend: str) -> Path:
    """``model`` for torch; for an ONNX backend, serve_load's folder with the ONNX variants (exported if missing)."""
    from bench.serve_load import with_onnx as exported

    return model if backend == "torch" else exported(model, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="about this many chunks in the corpus")
    parser.add_argument("--chunks_per_file", type=int, default=50, help="about this many chunks per file")
    parser.add_argument("--chunk_tokens", type=int, default=256, help="most model tokens per chunk")
    parser.add_argument("--overlap_tokens", type=int, default=16)
    parser.add_argument("--model", default="e5-small-offline", help="model folder (or e5-small-offline)")
    parser.add_argument("--backend", choices=BACKENDS, default="onnx-int8")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--vectors", choices=["sample", "model"], default="sample",
                        help="sample: embed --embed_sample chunks, fill the rest around them; model: embed all")  # fmt: skip
    parser.add_argument(
        "--embed_sample", type=int, default=1000, help="chunks embedded with --vectors sample"
    )
    parser.add_argument("--queries", type=int, default=200, help="Korean questions timed and scored")
    parser.add_argument(
        "--indexes", nargs="+", choices=INDEXES, default=list(INDEXES), help="ANN indexes compared"
    )
    parser.add_argument("--nprobes", type=int, nargs="+", default=[8, 16, 32], help="IVF_PQ nprobes tried")
    parser.add_argument("--refine", type=int, nargs="+", default=[2, 4, 8], help="IVF_PQ refine_factor tried")
    parser.add_argument(
        "--ef", type=int, nargs="+", default=[0, 64, 128, 256], help="HNSW ef tried (0: default)"
    )
    parser.add_argument("--recall_target", type=float, default=0.95)
    parser.add_argument(
        "--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where the temporary folder goes"
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill as on Ctrl-C

    from src.base_model import resolve_model

    work = Path(tempfile.mkdtemp(prefix="index_scale-", dir=args.tmp))
    print(f"work folder: {work}", file=sys.stderr, flush=True)
    try:
        report(args, work, Path(resolve_model(args.model)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, work: Path, model: Path) -> None:
    load_start = os.getloadavg()[0]
    rng = random.Random(args.seed)
    embedder = idx.load_embedder(str(with_onnx(model, work, args.backend)), args.backend)
    if embedder.m3 is not None and args.vectors == "sample":
        raise SystemExit("--vectors sample fills dense vectors only; use --vectors model for a BGE-M3 model")
    embedder.documents = Vectors(embedder.documents, args.vectors, args.embed_sample, args.seed, Clock())
    chunk_tokens = min(args.chunk_tokens, idx.document_tokens(embedder.folder))
    entries = load_glossary()

    docs, index = work / "docs", work / "index"
    t0 = time.perf_counter()
    files = write_corpus(docs, entries, args.chunks, args.chunks_per_file, embedder.tokenizer, chunk_tokens,
                         min(args.overlap_tokens, chunk_tokens // 4), rng)  # fmt: skip
    corpus_seconds = time.perf_counter() - t0
    corpus_mib = du_mib(docs)
    print(
        f"corpus: {len(files)} files, {corpus_mib:.0f} MiB, {corpus_seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )

    full = run_ingest(docs, index, embedder, args)
    n = full.chunks
    index_mib = du_mib(index)
    vectors_of: Vectors = embedder.documents
    embed_rate = vectors_of.embedded / full.clock.get("embed")  # chunks/s of the model
    rest = full.seconds - full.clock.get("embed") - full.clock.get("fill")
    whole = full.seconds if args.vectors == "model" else rest + n / embed_rate
    vectors_of.fill_done = True

    # ---- query latency, the encoding excluded
    queries = questions(entries, args.queries, rng)
    encode_seconds, encoded = time_each(lambda q: embedder.query(q)[0], queries, warm=2)
    vectors = dict(zip(queries, encoded, strict=True))
    doc_index = idx.DocIndex(index)
    table = doc_index.table("model")
    ann_built = idx.index_on(table, "vector") is not None
    deep = idx.CANDIDATES
    stub = Encoded(vectors)
    latency = {
        "dense": time_each(lambda q: idx.dense(table, vectors[q], 10), queries)[0],
        "bm25": time_each(lambda q: idx.bm25(table, q, 10), queries)[0],
        "hybrid": time_each(lambda q: idx.search(doc_index, "model", stub, q, 10, "hybrid"), queries)[0],
    }
    terms = {q: idx.morphemes([q])[0] for q in queries}
    cols, ids_d, ids_s = [*idx.HIT_COLUMNS, "_score"], ["chunk_id", "_distance"], ["chunk_id", "_score"]
    ready = {q: (idx.dense(table, vectors[q], deep), idx.bm25(table, q, deep)) for q in queries}
    pool = ThreadPoolExecutor(2)
    fusion, weights = idx.FUSIONS[0], [1 - idx.BM25_WEIGHT, idx.BM25_WEIGHT]  # src.index.search's default

    def parallel(q: str):
        d = pool.submit(idx.dense, table, vectors[q], deep)
        b = pool.submit(idx.bm25, table, q, deep)
        return idx.fuse([d.result(), b.result()], fusion, weights)[:10]

    def dense_ids(q: str):
        query = table.search(vectors[q], vector_column_name="vector").distance_type("cosine").select(ids_d)
        query = query.limit(deep)
        if ann_built:
            query = query.nprobes(idx.ANN_NPROBES).refine_factor(idx.ANN_REFINE)
        return query.to_arrow()

    def lean(q: str):
        """Hybrid with candidates as ids only, both searches in threads, the text fetched for the top k only."""
        d, b = pool.submit(dense_ids, q), pool.submit(fts, table, idx.morphemes([q])[0], deep, ids_s)
        scores: dict[str, float] = {}
        for ranking in (d.result()["chunk_id"].to_pylist(), b.result()["chunk_id"].to_pylist()):
            for rank, c in enumerate(ranking, start=1):
                scores[c] = scores.get(c, 0.0) + 0.5 / (idx.RRF_K + rank)
        top = sorted(scores, key=lambda c: (-scores[c], c))[:10]
        found = table.search().where(f"chunk_id IN ({idx.quoted(top)})").select(idx.HIT_COLUMNS).limit(10)
        return found.to_arrow()

    parts = {
        "Kiwi on the query": time_each(lambda q: idx.morphemes([q]), queries)[0],
        f"FTS search, k={deep} (morphemes given)": time_each(lambda q: idx.hits(fts(table, terms[q], deep, cols), "_score"), queries)[0],
        "  the same, chunk_id and score only": time_each(lambda q: fts(table, terms[q], deep, ids_s), queries)[0],
        f"dense, k={deep}": time_each(lambda q: idx.dense(table, vectors[q], deep), queries)[0],
        "  the same, chunk_id and distance only": time_each(dense_ids, queries)[0],
        f"{fusion} fusion": time_each(lambda q: idx.fuse(list(ready[q]), fusion, weights), queries)[0],
        "hybrid, both searches in 2 threads": time_each(parallel, queries)[0],
        "hybrid (RRF): ids-only candidates, 2 threads, text of top 10": time_each(lean, queries)[0],
    }  # fmt: skip
    pool.shutdown()

    # ---- ANN settings side by side, recall@10 against exact search
    latest = doc_index.db.open_table(idx.TABLES["model"])
    dim = latest.schema.field("vector").type.list_size
    qv = [vectors[q] for q in queries]
    print("ANN settings ...", file=sys.stderr, flush=True)
    exact_seconds, exact_results = time_each(lambda v: ann(latest, v, 10, None, None), qv)
    truth = [set(r["chunk_id"].to_pylist()) for r in exact_results]
    exact_deep, _ = time_each(lambda v: ann(latest, v, deep, None, None), qv)
    ann_table = [AnnRow("exact (flat scan)", None, 1.0, *pct(exact_seconds), pct(exact_deep)[1])]
    current = (idx.ANN_NPROBES, idx.ANN_REFINE)
    for kind in args.indexes:
        if kind == "ivf_pq" and ann_built:
            build, parts_n = full.clock.get("ann"), max(1, n // idx.ANN_PARTITIONS_ROWS)
            name = f"IVF_PQ p={parts_n} m={dim // 4} (ingest's)"
        else:
            name, build, parts_n = build_index(latest, kind, n, dim)
        if kind == "ivf_hnsw_sq":
            settings = [
                {"nprobes": parts_n, "refine": r, "ef": ef or None} for r in (None, 2) for ef in args.ef
            ]
        else:
            settings = [{"nprobes": p, "refine": r} for p in args.nprobes for r in args.refine]
        ann_table += ann_rows(
            latest, name, build, settings, qv, truth, deep, current if kind == "ivf_pq" else None
        )

    # ---- the incremental re-run (ingest restores the committed version: the ingest's own index)
    changed = rng.choice(files)
    path = docs / changed
    text = path.read_text(encoding="utf-8")
    first = text.index("\n## ")
    end = text.index("\n\n", text.index("\n\n", first + 1) + 2)  # after the first section's first paragraph
    extra = " ".join(spec_sentence("개정 항목", rng) for _ in range(4))
    path.write_text(text[:end] + "\n\n" + extra + text[end:], encoding="utf-8")
    one = run_ingest(docs, index, embedder, args)
    file_chunks = idx.read_meta(index).files[changed]["chunks"]
    share = file_chunks / embed_rate  # that file's share of the full embedding time
    nothing = run_ingest(docs, index, embedder, args)
    rerun_mib = du_mib(index)

    print_table(args, dict(full=full, one=one, nothing=nothing, n=n, files=files, corpus_mib=corpus_mib,
                           chunk_tokens=chunk_tokens, load_start=load_start, vectors_of=vectors_of, whole=whole,
                           embed_rate=embed_rate, rest=rest, index_mib=index_mib, rerun_mib=rerun_mib,
                           latency=latency, ann_built=ann_built, encode_seconds=encode_seconds, parts=parts,
                           deep=deep, ann_table=ann_table, file_chunks=file_chunks, share=share))  # fmt: skip


def print_table(args: argparse.Namespace, v: dict) -> None:
    full, one, nothing = v["full"], v["one"], v["nothing"]
    n = v["n"]
    width = 58

    def row(label: str, *cells: str) -> None:
        print(f"{label:<{width}}" + "".join(f"{c:>14}" for c in cells))

    def parts_of(c: Clock, total: float) -> str:
        names = ["scan", "read", "kiwi", "fingerprint", "embed", "fill", "rows", "import+connect", "write", "fts", "ann",
                 "optimize"]  # fmt: skip
        shown = {k: c.get(k) for k in names}
        shown["write"] -= c.get("fts") + c.get("ann") + c.get("optimize")
        known = sum(shown.values())
        return ", ".join(
            [*(f"{k} {s:.1f}" for k, s in shown.items() if s >= 0.05), f"other {total - known:.1f}"]
        )

    mode = ("every chunk embedded" if args.vectors == "model"
            else f"{args.embed_sample} chunks embedded, the rest filled around them")  # fmt: skip
    print(f"\nDocument index at scale: {n} chunks in {len(v['files'])} Markdown files ({v['corpus_mib']:.0f} MiB), "
          f"chunks of <= {v['chunk_tokens']} tokens (overlap {args.overlap_tokens}), {Path(args.model).name} "
          f"({args.backend}), vectors: {mode}; {args.queries} queries, k=10; {os.cpu_count()} cores, "
          f"load {v['load_start']:.1f} at start, {os.getloadavg()[0]:.1f} at end; lancedb "
          f"{__import__('lancedb').__version__}")  # fmt: skip
    print("ingest")
    label = "whole ingest, chunks/s" + (
        "" if args.vectors == "model" else " (projected: embedding at its rate)"
    )
    row(label, f"{n / v['whole']:.1f}", f"{v['whole'] / 60:.1f} min")
    row("  embedding only, chunks/s", f"{v['embed_rate']:.2f}",
        f"{v['vectors_of'].embedded if args.vectors == 'model' else args.embed_sample} in {full.clock.get('embed'):.0f} s")  # fmt: skip
    row(
        "  the rest (scan, read+chunk, Kiwi, write, indexes), chunks/s",
        f"{n / v['rest']:.1f}",
        f"{v['rest']:.0f} s",
    )
    print(f"    seconds: {parts_of(full.clock, full.seconds)}")
    stats = v["vectors_of"].stats
    if stats:
        row(
            "  fill: median cos to source / real nearest neighbour",
            f"{stats.achieved:.3f}",
            f"{stats.target:.3f}",
        )
    row("index size on disk, MiB (corpus text: MiB)", f"{v['index_mib']:.0f}", f"{v['corpus_mib']:.0f}")
    row("  after the two re-runs, MiB", f"{v['rerun_mib']:.0f}")

    lat = v["latency"]
    ann_note = (f"IVF_PQ nprobes {idx.ANN_NPROBES}, refine {idx.ANN_REFINE}" if v["ann_built"]
                else f"flat: no ANN index below ANN_MIN_ROWS={idx.ANN_MIN_ROWS}")  # fmt: skip
    print(f"query latency, ms, query encoding excluded (dense: {ann_note}; BM25 includes Kiwi on the query)")
    row("", "dense", "BM25", "hybrid")
    row("  p50", *[f"{pct(lat[m])[0]:.1f}" for m in ("dense", "bm25", "hybrid")])
    row("  p95", *[f"{pct(lat[m])[1]:.1f}" for m in ("dense", "bm25", "hybrid")])
    hybrid95 = pct(lat["hybrid"])[1]
    row("  hybrid p95 <= 100 ms", "yes" if hybrid95 <= 100 else f"NO ({hybrid95:.0f})")
    row(
        "  query encoding p50 / p95, for reference (excluded above)",
        "{:.1f} / {:.1f}".format(*pct(v["encode_seconds"])),
    )
    print(f"where hybrid's time goes (its dense and BM25 run at depth CANDIDATES={idx.CANDIDATES}), ms")
    row("", "p50", "p95")
    for label, seconds in v["parts"].items():
        row(f"  {label}", *[f"{x:.1f}" for x in pct(seconds)])

    print(f"ANN settings, recall@10 against exact search ({args.queries} queries); p95 at k=10 and "
          f"k={v['deep']} (hybrid's depth)")  # fmt: skip
    row("", "build s", "recall@10", "p50 ms", "p95 ms", f"p95 k={v['deep']}")
    rows = v["ann_table"]
    for r in rows:
        mark = (" *" if r.current else "") + ("" if r.recall >= args.recall_target else " (<target)")
        row(f"  {r.label}{mark}"[: width - 1], "" if r.build is None else f"{r.build:.0f}", f"{r.recall:.3f}",
            f"{r.p50:.1f}", f"{r.p95:.1f}", f"{r.p95_deep:.1f}")  # fmt: skip
    ok = [r for r in rows[1:] if r.recall >= args.recall_target]
    best = min(ok, key=lambda r: r.p95_deep) if ok else None
    print(f"  * the current constants (ANN_NPROBES={idx.ANN_NPROBES}, ANN_REFINE={idx.ANN_REFINE})")
    print(f"  recommended (recall@10 >= {args.recall_target}, lowest p95 at k={v['deep']}): "
          + (f"{best.label} ({best.recall:.3f}, {best.p95_deep:.1f} ms)" if best else "none reaches the target"))  # fmt: skip

    print("incremental re-run")
    row("  one file changed: seconds", f"{one.seconds:.1f}", f"{v['file_chunks']} chunks")
    print(f"    seconds: {parts_of(one.clock, one.seconds)}")
    row("  that file's share of the full embedding time, s", f"{v['share']:.1f}")
    row("  re-run / share (target <= 1)", f"{one.seconds / v['share']:.2f}")
    row("  re-run embedding / share", f"{one.clock.get('embed') / v['share']:.2f}")
    row("  nothing changed: seconds", f"{nothing.seconds:.1f}")
    print(f"    seconds: {parts_of(nothing.clock, nothing.seconds)}")


if __name__ == "__main__":
    main()
