"""BGE-M3's three retrieval modes: dense, sparse (lexical weights) and multi-vector (ColBERT).

An M3 model folder is the encoder (a sentence-transformers folder whose transformer sits at the root, so
``transformers.AutoModel`` loads it too) plus FlagEmbedding's two heads, ``sparse_linear.pt``
(hidden -> 1 token weight) and ``colbert_linear.pt`` (hidden -> ColBERT dim). sentence-transformers
reads only the dense part; this module keeps the heads through training (carried over unchanged) and
encodes and scores all three modes with FlagEmbedding's ``BGEM3FlagModel``.

Scores, as in the BGE-M3 paper and FlagEmbedding: dense = cosine of the [CLS] embeddings; sparse = sum
over tokens shared by query and passage of the product of their weights; multi-vector = mean over the
query's token vectors of the best dot product with any passage token vector; hybrid = the weighted sum
w_dense * dense + w_sparse * sparse + w_colbert * colbert divided by the weights' sum (default 1, 0.3, 1).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from src.base_model import ModelNotFound

if TYPE_CHECKING:
    from src.train import TrainConfig

HEADS = ("colbert_linear.pt", "sparse_linear.pt")
DEFAULT_WEIGHTS = (1.0, 0.3, 1.0)  # dense, sparse, colbert
MODES = ("dense", "sparse", "colbert", "hybrid")


def is_m3(folder: str | Path) -> bool:
    """True when ``folder`` holds both FlagEmbedding heads next to a transformer config."""
    folder = Path(folder)
    return (folder / "config.json").is_file() and all((folder / h).is_file() for h in HEADS)


def heads_folder(name_or_path: str) -> Path | None:
    """The local folder holding the M3 heads of a model folder or Hub id (fetched into the Hub cache when
    the Hub is reachable), or None for a dense-only model."""
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder if all((folder / h).is_file() for h in HEADS) else None
    try:
        from huggingface_hub import hf_hub_download

        return Path([hf_hub_download(name_or_path, head) for head in HEADS][0]).parent
    except Exception:  # noqa: BLE001 - not on the Hub, no such files, offline: a dense-only model
        return None


def carry_heads(source: str, target: str | Path) -> list[str]:
    """Copy the M3 heads of ``source`` (folder or Hub id) into ``target`` unchanged; returns their names."""
    folder = heads_folder(source)
    if folder is None:
        return []
    for head in HEADS:
        shutil.copy2(folder / head, Path(target) / head)
    return list(HEADS)


def require_flagembedding(folder: str | Path) -> None:
    """Raise ModelNotFound when ``folder`` is an M3 model and FlagEmbedding, which its sparse and ColBERT
    modes need, is not installed: a missing package stops a job before its encoding work, not after."""
    if is_m3(folder) and importlib.util.find_spec("FlagEmbedding") is None:
        raise ModelNotFound(f"{folder}: a BGE-M3 model (sparse/ColBERT heads) needs the FlagEmbedding package, "
                            "which this environment lacks: pip install FlagEmbedding")  # fmt: skip


def load(folder: str | Path, device: str = "cpu"):
    """FlagEmbedding's BGEM3FlagModel over ``folder`` (fp32 on CPU, fp16 on CUDA)."""
    from FlagEmbedding import BGEM3FlagModel

    return BGEM3FlagModel(str(folder), use_fp16=device.startswith("cuda"), devices=[device])


@dataclass
class M3Output:
    dense: np.ndarray  # [n, dim] unit vectors
    sparse: list[dict[int, float]]  # per text: token id -> weight (only tokens with weight > 0)
    colbert: list[np.ndarray]  # per text: [n_tokens, colbert_dim], normalized rows


def encode(model, texts: list[str], batch_size: int, max_length: int) -> M3Output:
    """All three modes of ``texts`` from a BGEM3FlagModel, or an OnnxEncoder (its ``encode_m3``)."""
    out = getattr(model, "encode_m3", model.encode)(texts, batch_size=batch_size, max_length=max_length, return_dense=True,
                       return_sparse=True, return_colbert_vecs=True)  # fmt: skip
    sparse = [{int(t): float(w) for t, w in weights.items()} for weights in out["lexical_weights"]]
    return M3Output(np.asarray(out["dense_vecs"], dtype=np.float32), sparse, list(out["colbert_vecs"]))


def sparse_scores(queries: list[dict[int, float]], passages: list[dict[int, float]]) -> np.ndarray:
    """Lexical matching scores [n_queries, n_passages]: sum of weight products over shared tokens."""
    from scipy.sparse import csr_matrix

    def matrix(rows: list[dict[int, float]], width: int) -> csr_matrix:
        indptr = np.cumsum([0] + [len(r) for r in rows])
        indices = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=indptr[-1])
        data = np.fromiter((w for r in rows for w in r.values()), dtype=np.float32, count=indptr[-1])
        return csr_matrix((data, indices, indptr), shape=(len(rows), width))

    width = 1 + max((t for r in queries + passages for t in r), default=0)
    return (matrix(queries, width) @ matrix(passages, width).T).toarray()


def colbert_scores(queries: list[np.ndarray], passages: list[np.ndarray]) -> np.ndarray:
    """Late-interaction scores [n_queries, n_passages]: for each query token its best passage token's
    dot product, averaged over the query's tokens."""
    lengths = np.array([len(p) for p in passages])
    stacked = np.concatenate(passages)  # [sum of passage tokens, dim]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    scores = np.zeros((len(queries), len(passages)), dtype=np.float32)
    for i, q in enumerate(queries):
        best = np.maximum.reduceat(q @ stacked.T, starts, axis=1)  # [q tokens, n_passages]
        scores[i] = best.mean(axis=0)
    return scores


def mode_scores(
    q: M3Output, p: M3Output, weights: tuple[float, float, float] = DEFAULT_WEIGHTS
) -> dict[str, np.ndarray]:
    """Each mode's scores [n_queries, n_passages] and their weighted hybrid."""
    scores = {
        "dense": q.dense @ p.dense.T,
        "sparse": sparse_scores(q.sparse, p.sparse),
        "colbert": colbert_scores(q.colbert, p.colbert),
    }
    scores["hybrid"] = sum(
        w * scores[m] for w, m in zip(weights, ("dense", "sparse", "colbert"), strict=True)
    ) / sum(weights)
    return scores


# ----------------------------------------------------------------------------- unified fine-tuning


def flagembedding_argv(
    config: TrainConfig, base: Path, data: Path, output: Path, precision: str
) -> list[str]:
    """src.train's configuration as FlagEmbedding M3 fine-tuning arguments: dense + sparse + ColBERT losses with
    self-distillation from their ensemble (unified fine-tuning), one positive and one hard negative per query."""
    argv = [
        "--model_name_or_path", str(base), "--train_data", str(data), "--output_dir", str(output),
        "--train_group_size", "2", "--query_max_len", str(config.max_query_length),
        "--passage_max_len", str(config.max_seq_length), "--per_device_train_batch_size", str(config.batch_size),
        "--gradient_accumulation_steps", str(config.gradient_accumulation_steps),
        "--learning_rate", str(config.learning_rate),
        "--num_train_epochs", str(config.epochs), "--max_steps", str(config.max_steps),
        "--temperature", str(config.temperature), "--seed", str(config.seed), "--logging_steps", str(config.logging_steps),
        "--unified_finetuning", "True", "--use_self_distill", "True", "--sentence_pooling_method", "cls",
        "--save_strategy", "no", "--report_to", "none",
    ]  # fmt: skip
    if config.device == "cpu":
        argv += ["--use_cpu", "True"]
    if precision != "fp32":  # mixed precision on GPUs, as FlagEmbedding's own recipes
        argv += [f"--{precision}", "True"]
    return argv


def finetune_unified(config: TrainConfig, base: Path, rows, workdir: Path, precision: str) -> Path:
    """Run FlagEmbedding's unified M3 fine-tuning on ``rows`` (Triplets) in ``precision`` (bf16, fp16 or
    fp32, see src.train.pick_precision); returns its output folder
    (encoder weights, tokenizer and both trained heads, not yet a sentence-transformers folder)."""
    import json

    from FlagEmbedding.finetune.embedder.encoder_only.m3 import (
        EncoderOnlyEmbedderM3DataArguments,
        EncoderOnlyEmbedderM3ModelArguments,
        EncoderOnlyEmbedderM3Runner,
        EncoderOnlyEmbedderM3TrainingArguments,
    )
    from transformers import HfArgumentParser

    data = workdir / "train_flagembedding.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(
                json.dumps({"query": r.query, "pos": [r.positive], "neg": [r.negative]}, ensure_ascii=False)
                + "\n"
            )
    parser = HfArgumentParser((EncoderOnlyEmbedderM3ModelArguments, EncoderOnlyEmbedderM3DataArguments,
                               EncoderOnlyEmbedderM3TrainingArguments))  # fmt: skip
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(
        args=flagembedding_argv(config, base, data, workdir / "flagembedding", precision)
    )
    EncoderOnlyEmbedderM3Runner(model_args=model_args, data_args=data_args, training_args=training_args).run()
    return workdir / "flagembedding"


def saved_tensors(folder: Path):
    """Every tensor FlagEmbedding saved in ``folder``: the encoder's weights (*.safetensors, or
    pytorch_model*.bin) and the two heads."""
    import torch
    from safetensors.torch import load_file

    for f in sorted(folder.glob("*.safetensors")):
        yield from load_file(f).values()
    for f in [*sorted(folder.glob("pytorch_model*.bin")), *(folder / head for head in HEADS)]:
        yield from torch.load(f, map_location="cpu", weights_only=True).values()


def save_as_sentence_transformer(folder: Path, target: Path, max_seq_length: int) -> None:
    """Write FlagEmbedding's output ``folder`` as a complete sentence-transformers folder at ``target``
    ([CLS] pooling and normalization, as bge-m3) with the trained heads beside the encoder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(folder), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu").save(str(target))
    for head in HEADS:
        shutil.copy2(folder / head, target / head)
