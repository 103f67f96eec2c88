"""Encode texts with an exported ONNX variant of a model folder: onnxruntime, tokenizers and numpy, no torch.

``src.export`` writes, inside a sentence-transformers model folder (the layout sentence-transformers' own
ONNX backend reads):

    onnx/model.onnx              fp32 transformer: input_ids, attention_mask [batch, tokens] (int64)
                                 -> last_hidden_state [batch, tokens, hidden] (float32)
    onnx/model_qint8_<cpu>.onnx  the same with int8 weights (dynamic quantization), <cpu> = avx2, avx512_vnni, arm64
    onnx/encoder.json            what sentence-transformers does around the transformer: tokenizer limits,
                                 pooling, normalization, prompts; plus the export's parity figures
    onnx/tokenizer.json          the fast tokenizer (the ``tokenizers`` library reads it without transformers)
    onnx/m3_heads.npz            BGE-M3 only: the sparse and ColBERT heads as numpy weights

This module imports nothing from ``src`` and nothing heavy, because Azure ML deploys it beside ``score.py``
into the lean scoring environment (onnxruntime, tokenizers, numpy). ``OnnxEncoder`` has the encode methods
the stages call on a SentenceTransformer (``encode``, ``encode_query``, ``encode_document``) and the M3
``encode`` of FlagEmbedding's BGEM3FlagModel (``encode_m3``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_PREFIX = "model_qint8_"
MANIFEST = "encoder.json"
TOKENIZER = "tokenizer.json"
M3_HEADS = "m3_heads.npz"
FORMAT = 1  # encoder.json's layout; a manifest of another format is refused
SPEC_KEYS = ("format", "source", "dim", "max_length", "query_length", "document_length", "max_positions", "pooling",
             "normalize", "prompts", "pad_token_id", "special_token_ids")  # fmt: skip


class VariantMissing(FileNotFoundError):
    """The model folder has no usable ONNX file for the requested backend (``src.export`` writes them)."""


class VariantAmbiguous(ValueError):
    """The model folder has several int8 files, so which one to serve is not clear."""


def weights_fingerprint(folder: Path) -> str:
    """What ties onnx/ to the weights it was exported from: config.json's bytes and each weights file's size."""
    h = hashlib.sha256((folder / "config.json").read_bytes() if (folder / "config.json").is_file() else b"")
    for f in sorted(folder.glob("*")):
        if f.suffix in (".safetensors", ".bin", ".pt"):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


def variant_file(folder: str | Path, backend: str, onnx_dir: Path | None = None) -> Path:
    """The ONNX file serving ``backend`` ("onnx": fp32, "onnx-int8": the one int8 file) in ``folder``/onnx
    (or in ``onnx_dir``)."""
    onnx_dir = onnx_dir or Path(folder) / ONNX_DIR
    if backend == "onnx":
        found = [onnx_dir / FP32_FILE] if (onnx_dir / FP32_FILE).is_file() else []
    elif backend == "onnx-int8":
        found = sorted(onnx_dir.glob(f"{INT8_PREFIX}*.onnx"))
    else:
        raise ValueError(f"not an ONNX backend: {backend!r} (one of {', '.join(BACKENDS[1:])})")
    if not found or not (onnx_dir / MANIFEST).is_file():
        raise VariantMissing(f"{folder}: no {backend} variant (run: python -m src.export --model {folder})")
    if len(found) > 1:
        raise VariantAmbiguous(
            f"{onnx_dir}: several int8 files ({', '.join(f.name for f in found)}); keep one"
        )
    return found[0]


def session(path: Path, threads: int = 0):
    """An onnxruntime CPU session over ``path``; ``threads`` 0 lets onnxruntime use every core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """A model folder's ONNX variant with the pooling, normalization and prompts recorded at export."""

    def __init__(
        self,
        folder: str | Path,
        backend: str = "onnx-int8",
        threads: int | None = None,
        onnx_dir: Path | None = None,
    ):
        """Load ``backend``'s file of ``folder``/onnx (``onnx_dir``: files not yet moved there, as src.export
        checks them); VariantMissing names the folder and the reason when the files are missing, damaged, of
        another format, or exported from other weights than the folder's."""
        self.folder = Path(folder)
        onnx_dir = onnx_dir or self.folder / ONNX_DIR
        self.file = variant_file(self.folder, backend, onnx_dir)
        self.backend = backend
        again = f"re-run python -m src.export --model {self.folder} --overwrite"
        try:
            self.spec = json.loads((onnx_dir / MANIFEST).read_text(encoding="utf-8"))
            if (
                not isinstance(self.spec, dict)
                or self.spec.get("format") != FORMAT
                or not set(SPEC_KEYS) <= set(self.spec)
            ):
                raise ValueError(f"{MANIFEST} is not format {FORMAT} with {', '.join(SPEC_KEYS)}")
            if self.spec["source"] != weights_fingerprint(self.folder):
                raise ValueError("it was exported from other weights than this folder's")
            env_threads = os.environ.get("OMP_NUM_THREADS", "")
            self.session = session(
                self.file,
                threads if threads is not None else int(env_threads) if env_threads.isdigit() else 0,
            )
            self.tokenizer = Tokenizer.from_file(str(onnx_dir / TOKENIZER))
            self.heads = dict(np.load(onnx_dir / M3_HEADS)) if (onnx_dir / M3_HEADS).is_file() else None
        except Exception as e:  # noqa: BLE001 - json, onnxruntime, tokenizers and numpy raise many types
            reason = (str(e).strip().splitlines() or [""])[0][:300]
            raise VariantMissing(
                f"{onnx_dir}: cannot load the {backend} variant ({type(e).__name__}: {reason}); {again}"
            ) from None
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.input_names = [i.name for i in self.session.get_inputs()]

    def get_embedding_dimension(self) -> int:
        return int(self.spec["dim"])

    @property
    def prompts(self) -> dict[str, str]:
        return self.spec["prompts"]

    # ------------------------------------------------------------------ the transformer
    def token_ids(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Each text's token ids with its special tokens, cut to ``max_length`` (at most the model's position
        limit) as the transformers tokenizer truncates: content tokens dropped from the end, special tokens kept.

        One tokenizer that never truncates serves every length: XLM-R's holds about 250 MB, so a copy per
        length would double the memory, and changing its truncation per call would race between requests."""
        max_length = min(max_length, self.spec["max_positions"])
        out = []
        for e in self.tokenizer.encode_batch(texts):
            ids = e.ids
            if len(ids) > max_length:
                trailing = next(
                    (i for i, special in enumerate(reversed(e.special_tokens_mask)) if not special), 0
                )
                ids = ids[: max_length - trailing] + ids[len(ids) - trailing :]
            out.append(ids)
        return out

    def hidden_states(
        self, texts: list[str], max_length: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids, attention mask [batch, tokens] and last hidden states [batch, tokens, hidden] of one batch,
        truncated to ``max_length`` tokens (default: the model's limit)."""
        encodings = self.token_ids(texts, max_length or self.spec["max_length"])
        width = max(len(e) for e in encodings)
        ids = np.full((len(texts), width), self.spec["pad_token_id"], dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self.session.run(["last_hidden_state"], {n: feeds[n] for n in self.input_names})
        return ids, mask, hidden

    def batches(self, texts: list[str], batch_size: int, show_progress_bar: bool):
        """(positions, texts) batches of similar length, longest first (as sentence-transformers sorts)."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"Batches ({self.backend})", unit="batch")
        for start in starts:
            positions = order[start : start + batch_size]
            yield positions, [texts[i] for i in positions]

    # ------------------------------------------------------------------ dense embeddings
    def encode(
        self,
        texts: str | list[str],
        prompt: str | None = None,
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        max_length: int | None = None,
    ) -> np.ndarray:
        """Sentence embeddings [n, dim] (float32) as ``SentenceTransformer.encode``: ``prompt`` is prepended to
        every text (None or "": no prompt), each truncated at ``max_length`` tokens (default: the model's),
        pooled as exported, normalized when the model ends in a Normalize module or ``normalize_embeddings``
        asks. ``convert_to_numpy`` is accepted for compatibility."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        for positions, batch in self.batches(
            [(prompt or "") + t for t in texts], batch_size, show_progress_bar
        ):
            _, mask, hidden = self.hidden_states(batch, max_length)
            out[positions] = self.pool(hidden, mask)
        if self.spec["normalize"] or normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out

    def encode_query(self, texts, **options) -> np.ndarray:
        """``encode`` with the query prompt, truncated at the model's query length."""
        return self.encode(
            texts, prompt=self.prompts.get("query", ""), max_length=self.spec["query_length"], **options
        )

    def encode_document(self, texts, **options) -> np.ndarray:
        """``encode`` with the document prompt, truncated at the model's document length."""
        return self.encode(
            texts, prompt=self.prompts.get("document", ""), max_length=self.spec["document_length"], **options
        )

    def pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[batch, hidden] from [batch, tokens, hidden]: the [CLS] token, or the mean over real tokens."""
        if self.spec["pooling"] == "cls":
            return hidden[:, 0]
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    # ------------------------------------------------------------------ BGE-M3 sparse and ColBERT heads
    def encode_m3(
        self,
        texts: list[str],
        batch_size: int = 16,
        max_length: int = 512,
        return_dense: bool = True,
        return_sparse: bool = False,
        return_colbert_vecs: bool = False,
    ) -> dict:
        """FlagEmbedding's ``BGEM3FlagModel.encode`` output from the ONNX transformer and the numpy heads:
        "dense_vecs" [n, dim] unit rows ([CLS]), "lexical_weights" per text {str(token id): weight > 0} (the
        largest weight per distinct token, special tokens left out), "colbert_vecs" per text [tokens - 1, dim]
        unit rows (every token after [CLS])."""
        if self.heads is None:
            raise ValueError(f"{self.folder}: no M3 heads ({ONNX_DIR}/{M3_HEADS}): not a BGE-M3 model")
        dense, sparse, colbert = [None] * len(texts), [None] * len(texts), [None] * len(texts)
        special = set(self.spec["special_token_ids"])
        for positions, batch in self.batches(list(texts), batch_size, show_progress_bar=False):
            ids, mask, hidden = self.hidden_states(batch, max_length)
            for row, i in enumerate(positions):
                n = int(mask[row].sum())
                states = hidden[row, :n]
                dense[i] = unit(states[0])
                if return_sparse:
                    weights = np.maximum(
                        states @ self.heads["sparse_weight"].T + self.heads["sparse_bias"], 0
                    )
                    sparse[i] = lexical_weights(ids[row, :n], weights[:, 0], special)
                if return_colbert_vecs:
                    colbert[i] = unit(
                        states[1:] @ self.heads["colbert_weight"].T + self.heads["colbert_bias"]
                    )
        return {
            "dense_vecs": np.stack(dense) if return_dense else None,
            "lexical_weights": sparse if return_sparse else None,
            "colbert_vecs": colbert if return_colbert_vecs else None,
        }


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit length along its last axis (float32)."""
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def lexical_weights(ids: np.ndarray, weights: np.ndarray, special: set[int]) -> dict[str, float]:
    """{str(token id): the largest weight of that token} over tokens with weight > 0, specials left out."""
    result: dict[str, float] = {}
    for token, weight in zip(ids.tolist(), weights.tolist(), strict=True):
        if token not in special and weight > 0 and weight > result.get(str(token), 0.0):
            result[str(token)] = weight
    return result
