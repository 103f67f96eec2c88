"""Contrastive fine-tuning of a sentence-transformers encoder (default BAAI/bge-m3) on our triplets.

The same command runs on a laptop CPU (``--use_cpu``), Apple MPS, a CUDA GPU, and under
``torchrun --nproc_per_node N`` (DDP) on Azure ML. The flow:

    1. load the base model (stand-in short name, local folder or Hub id; checked offline first)
    2. load the triplets, hold out a dev slice of *concepts* for model selection
    3. optionally mine hard negatives with the base model
    4. loss: in-batch negatives + the row's hard negative (MultipleNegativesRankingLoss), or its
       cached (GradCache) variant for large effective batches in little memory
    5. evaluator: retrieval (nDCG@10 etc.) of the dev queries over the dev passages
    6. training arguments: concept-aware batches, per-side max lengths, prompts, precision, checkpoints
    7. train (``--resume`` continues from the last checkpoint), keep the best dev checkpoint
    8. save atomically: a complete sentence-transformers folder + training_summary.json

    uv run python -m src.train --train_data data/train.jsonl --epochs 1 --batch_size 2 \\
        --max_seq_length 128 --use_cpu --model_name e5-small-offline
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from src import m3
from src.base_model import STANDIN_NAME, ModelNotFound, resolve_model
from src.data import SYNTH_COMMAND, DataError, Triplet, atomic_path, read_jsonl

logger = logging.getLogger("src.train")

SUMMARY_FILE = "training_summary.json"
DEV_METRIC = "dev_cosine_ndcg@10"
DEV_METRIC_LOGGED = f"eval_{DEV_METRIC}"  # the same metric as the trainer logs it
COLUMNS = ("query", "positive", "negative")
TASKS = {"query": "query", "positive": "document", "negative": "document"}
ATTENTION_DROPOUT = "attention_probs_dropout_prob"  # BERT / XLM-R (bge-m3) config field


class UsageError(Exception):
    """Flags or inputs that cannot work together; reported as one line, exit code 2."""


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model = p.add_argument_group("model")
    model.add_argument(
        "--model_name", default="BAAI/bge-m3", help=f"Hub id, local folder, or '{STANDIN_NAME}'"
    )
    model.add_argument(
        "--backend",
        choices=["sentence-transformers", "flagembedding"],
        default="sentence-transformers",
        help="flagembedding: BGE-M3 unified fine-tuning of dense, sparse and ColBERT heads (M3 models only)",
    )
    model.add_argument("--max_seq_length", type=int, default=256, help="max tokens of a passage")
    model.add_argument("--max_query_length", type=int, default=64, help="max tokens of a query")
    model.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (merged into the saved model)"
    )
    model.add_argument("--lora_r", type=int, default=16)
    model.add_argument("--lora_alpha", type=int, default=32)
    model.add_argument(
        "--freeze_embeddings", action="store_true", help="do not train the word-embedding matrix"
    )
    model.add_argument(
        "--freeze_layers",
        type=int,
        default=0,
        help="freeze the embedding block and the first N encoder layers (no backward pass through them)",
    )
    model.add_argument(
        "--attention_dropout",
        type=float,
        default=None,
        help="attention-probability dropout while training (default: the model's own, 0.1 for BERT/XLM-R). "
        "0 lets CPU attention use its fused kernel: forward passes about 1.4x faster",
    )
    model.add_argument(
        "--gradient_checkpointing", action="store_true", help="trade compute for activation memory"
    )
    model.add_argument(
        "--pad_to_max_length",
        action="store_true",
        help="pad every batch to its max length (legacy fixed-shape batches; slower, for comparison)",
    )

    data = p.add_argument_group("data")
    data.add_argument("--train_data", type=Path, default=Path("data/train.jsonl"), help="triplets JSONL")
    data.add_argument(
        "--dev_ratio", type=float, default=0.1, help="share of training concepts held out as dev"
    )
    data.add_argument("--max_dev_queries", type=int, default=300)
    data.add_argument(
        "--hard_negatives",
        choices=["row", "none"],
        default="row",
        help="row: each row's hard negative joins the in-batch negatives; none: query-positive pairs only "
        "(in-batch negatives; a third fewer passages to encode per step)",
    )
    data.add_argument(
        "--mine_hard_negatives", action="store_true", help="replace negatives mined by the base model"
    )
    data.add_argument(
        "--mining_margin",
        type=float,
        default=0.05,
        help="skip candidates scoring above (positive score - margin): likely false negatives",
    )

    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument(
        "--max_steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)"
    )
    train.add_argument("--batch_size", type=int, default=16, help="rows per device and step")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument("--learning_rate", type=float, default=2e-5)
    train.add_argument("--warmup_ratio", type=float, default=0.1)
    train.add_argument(
        "--loss",
        choices=["mnrl", "cached_mnrl", "gist", "cached_gist"],
        default="mnrl",
        help="mnrl: in-batch negatives; cached_mnrl: GradCache, big batches in little memory; gist / "
        "cached_gist: the same, with the base model as a guide that drops likely false negatives",
    )
    train.add_argument("--mini_batch_size", type=int, default=8, help="chunk size of the cached losses")
    train.add_argument(
        "--gist_margin",
        type=float,
        default=0.0,
        help="gist: drop an in-batch negative when the guide scores it above (positive score - margin)",
    )
    train.add_argument(
        "--temperature",
        type=float,
        default=0.05,
        help="softmax temperature of the contrastive loss (logits = cosine / temperature)",
    )
    train.add_argument(
        "--batching",
        choices=["concept", "random"],
        default="concept",
        help="concept: no concept twice in a batch (no false in-batch negatives)",
    )
    train.add_argument(
        "--eval_steps",
        type=float,
        default=200,
        help="evaluate and checkpoint every N steps; below 1, a share of the run (0.5: halfway and at the end)",
    )
    train.add_argument("--logging_steps", type=int, default=10)
    train.add_argument(
        "--device",
        choices=["auto", "cuda", "mps", "cpu"],
        default="auto",
        help="auto: CUDA, then MPS, then CPU; cuda or mps: that device or stop with an error, never a silent CPU run",
    )
    train.add_argument(
        "--use_cpu",
        action="store_true",
        help="train on CPU even if CUDA or MPS is available (= --device cpu)",
    )
    train.add_argument("--seed", type=int, default=42)

    out = p.add_argument_group("output")
    out.add_argument(
        "--merge_base",
        type=float,
        default=1.0,
        help="save alpha * fine-tuned + (1 - alpha) * base weights (WiSE-FT model merging against "
        "forgetting); 1 keeps the fine-tuned weights",
    )
    out.add_argument("--output_dir", type=Path, default=Path("outputs/bge-m3-kr"))
    out.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="replace an existing output folder that is not a previous training run",
    )
    out.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint of an interrupted run"
    )
    args = p.parse_args(argv)
    if args.use_cpu and args.device not in ("auto", "cpu"):
        p.error(f"--use_cpu contradicts --device {args.device}; pass one of them")
    args.device = "cpu" if args.use_cpu else args.device
    args.checkpoint_dir = args.output_dir.with_name(args.output_dir.name + "-checkpoints")
    return args


def check_args(args: argparse.Namespace) -> None:
    """Reject impossible flag combinations and an output folder we must not overwrite."""
    if args.batch_size < 2:
        raise UsageError("--batch_size must be at least 2: in-batch negatives need other rows in the batch")
    if args.lora and (args.freeze_embeddings or args.freeze_layers):
        raise UsageError("--lora already freezes every base weight; drop --freeze_embeddings/--freeze_layers")
    if args.freeze_layers < 0:
        raise UsageError("--freeze_layers must be >= 0")
    if args.attention_dropout is not None and not 0 <= args.attention_dropout < 1:
        raise UsageError("--attention_dropout must be in [0, 1)")
    if args.max_query_length < 4 or args.max_seq_length < 8:
        raise UsageError("--max_query_length must be >= 4 and --max_seq_length >= 8")
    if args.eval_steps <= 0 or (args.eval_steps > 1 and not float(args.eval_steps).is_integer()):
        raise UsageError("--eval_steps must be a whole number of steps, or a share of the run in (0, 1)")
    if not 0 <= args.dev_ratio < 0.5:
        raise UsageError("--dev_ratio must be in [0, 0.5)")
    if not 0 < args.temperature <= 1:
        raise UsageError("--temperature must be in (0, 1]")
    if args.loss.startswith("cached") and args.mini_batch_size < 1:
        raise UsageError("--mini_batch_size must be >= 1")
    if args.mine_hard_negatives and args.hard_negatives == "none":
        raise UsageError("--mine_hard_negatives needs --hard_negatives row")
    if not 0 < args.merge_base <= 1:
        raise UsageError("--merge_base must be in (0, 1]")
    if not 0 <= args.gist_margin < 1:
        raise UsageError("--gist_margin must be in [0, 1)")
    if args.backend == "flagembedding":
        unsupported = [f for f in ("lora", "freeze_embeddings", "freeze_layers", "mine_hard_negatives", "resume",
                                   "pad_to_max_length", "gradient_checkpointing") if getattr(args, f)]  # fmt: skip
        unsupported += ["attention_dropout"] if args.attention_dropout is not None else []
        unsupported += ["merge_base"] if args.merge_base != 1 else []
        unsupported += ["hard_negatives"] if args.hard_negatives != "row" else []
        if unsupported or args.loss != "mnrl" or args.batching != "concept":
            raise UsageError("--backend flagembedding supports the data, length, batch, learning-rate, epoch/step, "
                             f"temperature and seed flags only; drop --{', --'.join(unsupported) or 'loss/--batching'}")  # fmt: skip
    out = args.output_dir
    if out.exists() and not (out / SUMMARY_FILE).exists() and not args.overwrite_output_dir:
        raise UsageError(
            f"{out} exists and is not a previous training run; choose another --output_dir "
            "or pass --overwrite_output_dir"
        )
    if args.resume and not last_checkpoint(args.checkpoint_dir):
        raise UsageError(f"--resume: no checkpoint in {args.checkpoint_dir} to resume from")


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest *complete* checkpoint: the trainer writes trainer_state.json last, so a checkpoint
    cut short by a kill (no trainer_state.json) is skipped."""
    if not checkpoint_dir.is_dir():
        return None
    complete = [
        d
        for d in checkpoint_dir.glob("checkpoint-*")
        if d.name.split("-")[-1].isdigit() and (d / "trainer_state.json").exists()
    ]
    return str(max(complete, key=lambda d: int(d.name.split("-")[-1]))) if complete else None


# ----------------------------------------------------------------------------- data


@dataclass
class Splits:
    train: list[Triplet]
    dev: list[Triplet]


def split_dev(rows: list[Triplet], dev_ratio: float, seed: int) -> Splits:
    """Hold out ``dev_ratio`` of the training concepts; training rows that mention a dev concept in any
    form (positive or negative) are dropped so the dev score stays unseen."""
    concepts = sorted({r.concept_id for r in rows})
    n_dev = round(len(concepts) * dev_ratio)
    if dev_ratio > 0 and n_dev < 2:
        n_dev = 2 if len(concepts) >= 6 else 0
    dev_concepts = set(random.Random(seed).sample(concepts, n_dev))
    dev = [r for r in rows if r.concept_id in dev_concepts]
    train = [
        r for r in rows if r.concept_id not in dev_concepts and r.negative_concept_id not in dev_concepts
    ]
    return Splits(train, dev)


def passage_concepts(rows: list[Triplet]) -> dict[str, str]:
    """Every distinct passage of the rows (positives and negatives) -> the concept it describes."""
    passages: dict[str, str] = {}
    for r in rows:
        passages.setdefault(r.positive, r.concept_id)
        passages.setdefault(r.negative, r.negative_concept_id)
    return passages


def dev_evaluator(rows: list[Triplet], max_queries: int, seed: int):
    """Retrieval of dev queries over every dev passage (positives and negatives); relevant = same concept."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    passages = passage_concepts(rows)
    corpus = {f"d{i}": text for i, text in enumerate(passages)}
    concept_of = {f"d{i}": concept for i, concept in enumerate(passages.values())}
    sample = random.Random(seed).sample(rows, min(max_queries, len(rows)))
    queries = {f"q{i}": r.query for i, r in enumerate(sample)}
    relevant = {
        f"q{i}": {d for d, c in concept_of.items() if c == r.concept_id} for i, r in enumerate(sample)
    }
    return InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        name="dev",
        batch_size=32,
        write_csv=False,
    )


def passage_prompt_name(model) -> str | None:
    """The model's prompt name for passages, in the order sentence-transformers' encode_document uses."""
    return next((n for n in ("document", "passage", "corpus") if n in model.prompts), None)


def mine_hard_negatives(model, rows: list[Triplet], margin: float, batch_size: int) -> list[Triplet]:
    """Replace each row's negative by the base model's highest-scoring passage of another concept that
    does not score above (positive score - margin); rows without such a candidate keep their negative."""
    import torch

    passages = passage_concepts(rows)
    texts, concepts = list(passages), list(passages.values())
    options = {"batch_size": batch_size, "convert_to_tensor": True, "normalize_embeddings": True}
    doc = model.encode_document(texts, show_progress_bar=True, **options)
    query = model.encode_query([r.query for r in rows], show_progress_bar=True, **options)
    index = {t: i for i, t in enumerate(texts)}
    mined = []
    for start in range(0, len(rows), 256):
        chunk = rows[start : start + 256]
        scores = query[start : start + len(chunk)] @ doc.T  # [chunk, passages], cosine
        for row, s in zip(chunk, scores, strict=True):
            ceiling = s[index[row.positive]].item() - margin
            same = torch.tensor([c == row.concept_id for c in concepts], device=s.device)
            s = s.masked_fill(same | (s > ceiling), float("-inf"))
            best = int(s.argmax())
            if torch.isinf(s[best]):
                mined.append(row)
            else:
                mined.append(
                    Triplet(**{**asdict(row), "negative": texts[best], "negative_concept_id": concepts[best]})
                )
    return mined


class ConceptBatchSampler:
    """Batches in which no concept occurs twice, counting each row's positive and negative concept.

    Two rows of one concept in a batch would turn each other's positives into negatives (false
    negatives); a row whose hard negative belongs to another row's concept does the same. Rows are
    shuffled per epoch (seed + epoch) and placed greedily; a row that conflicts waits for a later batch.
    Implements the sentence-transformers batch sampler protocol (``set_epoch``, ``__iter__``, ``__len__``).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool,
        *,
        concepts: list[tuple[str, str]],
        seed: int = 0,
        **_unused,
    ):
        self.batch_size, self.drop_last, self.concepts, self.seed = batch_size, drop_last, concepts, seed
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        if self._cache and self._cache[0] == self.epoch:
            return self._cache[1]
        order = list(range(len(self.concepts)))
        random.Random(self.seed + self.epoch).shuffle(order)
        batches: list[list[int]] = []
        while order:
            batch, anchors, negatives, waiting = [], set(), set(), []
            for i in order:
                anchor, negative = self.concepts[i]
                if (
                    len(batch) < self.batch_size
                    and anchor not in anchors | negatives
                    and negative not in anchors
                ):
                    batch.append(i)
                    anchors.add(anchor)
                    negatives.add(negative)
                else:
                    waiting.append(i)
            batches.append(batch)
            order = waiting
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches())


# ----------------------------------------------------------------------------- model


def pick_device(requested: str) -> str:
    """The training device for ``--device``: ``auto`` takes CUDA, then MPS, then CPU; ``cuda`` and ``mps``
    must be available or raise UsageError saying why (a GPU job must never train on CPU for hours)."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        try:
            torch.cuda.init()
            reason = "no CUDA device is visible"
        except Exception as e:  # noqa: BLE001 - torch's own reason: no driver, driver too old, no GPU
            reason = str(e).strip().splitlines()[0]
        raise UsageError(
            f"--device cuda: CUDA is not available to torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda or 'none, a CPU-only build'}): {reason}. Pass --device cpu to train on CPU on purpose"
        )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise UsageError(
            "--device mps: Apple MPS is not available here. Pass --device cpu to train on CPU on purpose"
        )
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_precision(device: str) -> str:
    """Training precision on ``device``: bf16 on CUDA GPUs that support it, fp16 on other CUDA GPUs, else fp32."""
    import torch

    if device != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def load_model(path: str, args: argparse.Namespace, device: str):
    """Load the encoder, set per-side max lengths, and apply the adaptation mode."""
    from sentence_transformers import SentenceTransformer

    config_kwargs = None
    if args.attention_dropout is not None:
        from transformers import AutoConfig

        base_dropout = getattr(AutoConfig.from_pretrained(path), ATTENTION_DROPOUT, None)
        if base_dropout is None:
            raise UsageError(f"--attention_dropout: {path} has no {ATTENTION_DROPOUT} in its config")
        config_kwargs = {ATTENTION_DROPOUT: args.attention_dropout}
    model = SentenceTransformer(path, device=device, config_kwargs=config_kwargs)
    transformer = model[0]
    if config_kwargs:
        # the attention modules were built with the training value; the saved config keeps the base's own
        setattr(transformer.auto_model.config, ATTENTION_DROPOUT, base_dropout)
    transformer.max_seq_length = args.max_seq_length
    transformer.query_length = args.max_query_length
    transformer.document_length = args.max_seq_length
    if args.pad_to_max_length:
        transformer.processing_kwargs = {**transformer.processing_kwargs, "text": {"padding": "max_length"}}
    model.model_card_data.language = ["ko"]
    model.model_card_data.model_name = (
        f"{args.model_name} fine-tuned for Korean electrical/electronics retrieval"
    )
    if args.freeze_embeddings:
        transformer.auto_model.get_input_embeddings().weight.requires_grad_(False)
    if args.freeze_layers:
        encoder = transformer.auto_model
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        if layers is None or args.freeze_layers >= len(layers):
            count = "no encoder.layer list" if layers is None else f"{len(layers)} layers"
            raise UsageError(
                f"--freeze_layers {args.freeze_layers}: the model has {count}; leave at least one to train"
            )
        encoder.embeddings.requires_grad_(False)
        for layer in layers[: args.freeze_layers]:
            layer.requires_grad_(False)
    if args.lora:
        from peft import LoraConfig

        model.add_adapter(
            LoraConfig(
                r=args.lora_r,
                lora_alpha=args.lora_alpha,
                lora_dropout=0.05,
                target_modules=["query", "key", "value", "dense"],
                bias="none",
            )
        )
    return model


def merge_lora(model) -> None:
    """Fold trained LoRA adapters into the base weights so the saved folder needs no PEFT."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    root = model[0].auto_model
    for name, module in list(root.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(root.get_submodule(parent_name) if parent_name else root, child, module.get_base_layer())
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if hasattr(root, attr):
            delattr(root, attr)


def make_loss(args: argparse.Namespace, model, base_path: str, device: str):
    """The contrastive loss: in-batch negatives plus each row's hard negative, logits = cosine / temperature.
    The gist losses load the base model again as a frozen guide: an in-batch negative that the guide scores
    above the row's positive (minus --gist_margin) is treated as a likely false negative and ignored."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses

    if args.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model, scale=1 / args.temperature)
    if args.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(
            model, scale=1 / args.temperature, mini_batch_size=args.mini_batch_size
        )
    guide = SentenceTransformer(base_path, device=device).requires_grad_(False)
    guide[0].max_seq_length = args.max_seq_length
    options = {"temperature": args.temperature, "margin_strategy": "absolute", "margin": args.gist_margin}
    if args.loss == "cached_gist":
        return losses.CachedGISTEmbedLoss(model, guide, mini_batch_size=args.mini_batch_size, **options)
    return losses.GISTEmbedLoss(model, guide, **options)


def merge_with_base(model, base_path: str, alpha: float) -> None:
    """WiSE-FT: set every floating-point weight of the encoder to alpha * fine-tuned + (1 - alpha) * base,
    in place. The base must have the same architecture (it is the model training started from)."""
    import torch
    from sentence_transformers import SentenceTransformer

    tuned = model[0].auto_model
    base = SentenceTransformer(base_path, device="cpu")[0].auto_model.state_dict()
    with torch.no_grad():
        for name, tensor in tuned.state_dict().items():
            if tensor.is_floating_point():
                tensor.mul_(alpha).add_(base[name].to(tensor.device, tensor.dtype), alpha=1 - alpha)


def dev_metrics_of_best(state) -> dict[str, float]:
    """The dev metrics the trainer logged for the checkpoint it kept (the best one, or the last evaluation),
    without the ``eval_`` prefix; empty when it never evaluated. Saves evaluating the final model again."""
    evals = [h for h in state.log_history if DEV_METRIC_LOGGED in h]
    if not evals:
        return {}
    best = state.best_model_checkpoint
    step = int(best.rsplit("-", 1)[-1]) if best else evals[-1]["step"]
    entry = next((h for h in evals if h["step"] == step), evals[-1])
    return {k.removeprefix("eval_"): v for k, v in entry.items() if k.startswith("eval_dev_")}


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process in MiB: device memory on CUDA/MPS, resident set size on CPU."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    if device == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


# ----------------------------------------------------------------------------- main flow


def train(args: argparse.Namespace):
    """Run the whole flow; returns (trained model, summary dict)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    device = pick_device(args.device)

    # 1. model
    base_path = resolve_model(args.model_name)
    model = load_model(base_path, args, device)

    # 2. data
    rows = read_jsonl(args.train_data, Triplet, made_by=SYNTH_COMMAND)
    splits = split_dev(rows, args.dev_ratio, args.seed)
    if len(splits.train) < args.batch_size:
        raise UsageError(
            f"{args.train_data}: {len(splits.train)} training rows left, fewer than --batch_size"
        )

    # 3. optional hard-negative mining with the base model
    if args.mine_hard_negatives:
        splits.train = mine_hard_negatives(model, splits.train, args.mining_margin, args.batch_size * 4)
    columns = COLUMNS if args.hard_negatives == "row" else COLUMNS[:2]
    train_dataset = Dataset.from_dict({c: [getattr(r, c) for r in splits.train] for c in columns})

    # 4. loss
    loss = make_loss(args, model, base_path, device)

    # 5. evaluator
    evaluator = dev_evaluator(splits.dev, args.max_dev_queries, args.seed) if splits.dev else None

    # 6. training arguments
    prompts = {"query": model.prompts.get("query"), "positive": None, "negative": None}
    passage_prompt = passage_prompt_name(model)
    for column in ("positive", "negative"):
        prompts[column] = model.prompts.get(passage_prompt) if passage_prompt else None
    prompts = {c: p for c, p in prompts.items() if p and c in columns}
    if args.batching == "concept":
        concepts = [(r.concept_id, r.negative_concept_id) for r in splits.train]
        batch_sampler = functools.partial(ConceptBatchSampler, concepts=concepts)
    else:
        batch_sampler = BatchSamplers.BATCH_SAMPLER
    precision = pick_precision(device)
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(args.checkpoint_dir),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_ratio,
        weight_decay=0.01,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        activation_checkpointing=args.gradient_checkpointing,
        batch_sampler=batch_sampler,
        prompts=prompts or None,
        router_mapping={c: TASKS[c] for c in columns},
        eval_strategy="steps" if evaluator else "no",
        eval_steps=args.eval_steps if args.eval_steps < 1 else int(args.eval_steps),
        save_strategy="steps",
        save_steps=args.eval_steps if args.eval_steps < 1 else int(args.eval_steps),
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=DEV_METRIC_LOGGED if evaluator else None,
        greater_is_better=True,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        report_to=["mlflow"] if os.environ.get("MLFLOW_TRACKING_URI") else "none",
        run_name=args.output_dir.name,
        seed=args.seed,
        data_seed=args.seed,
        ddp_backend="gloo" if world_size > 1 and device == "cpu" else None,
        dataloader_drop_last=world_size > 1,
    )

    # 7. train
    trainer = SentenceTransformerTrainer(
        model=model, args=training_args, train_dataset=train_dataset, loss=loss, evaluator=evaluator
    )
    resume_from = last_checkpoint(args.checkpoint_dir) if args.resume else None
    start_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
    if not resume_from and is_main and args.checkpoint_dir.exists():
        shutil.rmtree(args.checkpoint_dir)  # stale checkpoints of an earlier, unfinished run
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    wall = time.perf_counter() - started
    final_dev = dev_metrics_of_best(trainer.state) or (evaluator(model) if evaluator else {})

    # 8. save (rank 0 only), atomically
    steps_run = trainer.state.global_step - start_step
    examples = steps_run * args.batch_size * args.gradient_accumulation_steps * world_size
    losses_logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {
        "base_model": args.model_name,
        "base_model_path": base_path,
        "output_dir": str(args.output_dir),
        "device": device,
        "precision": precision,
        "world_size": world_size,
        "global_step": trainer.state.global_step,
        "resumed_from_step": start_step,
        "steps_this_run": steps_run,
        "epochs": round(trainer.state.epoch or 0.0, 4),
        "wall_time_s": round(wall, 2),
        "examples_per_s_incl_dev_eval": round(examples / wall, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "train_loss": round(result.training_loss, 5),
        "final_logged_losses": losses_logged[-5:],
        "best_checkpoint_metric": trainer.state.best_metric,
        "dev_metrics": {k: round(float(v), 5) for k, v in final_dev.items()},
        "data": {
            "train_file": str(args.train_data),
            "train_rows": len(splits.train),
            "train_concepts": len({r.concept_id for r in splits.train}),
            "dev_rows": len(splits.dev),
            "dev_concepts": len({r.concept_id for r in splits.dev}),
            "hard_negatives_mined": args.mine_hard_negatives,
            "columns": list(train_dataset.column_names),
        },
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    if is_main:
        if args.lora:
            merge_lora(model)
        if args.merge_base != 1:
            merge_with_base(model, base_path, args.merge_base)
        with atomic_path(args.output_dir, is_dir=True) as tmp:
            model.save(str(tmp))
            summary["m3_heads"] = m3.carry_heads(base_path, tmp) or None  # sparse/ColBERT heads, unchanged
            (tmp / SUMMARY_FILE).write_text(
                json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
            )
        shutil.rmtree(args.checkpoint_dir, ignore_errors=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # torchrun: release the process group before exit
    return model, summary


def train_unified(args: argparse.Namespace):
    """The flagembedding backend: FlagEmbedding's unified fine-tuning of an M3 model (dense, sparse and
    ColBERT trained together with self-distillation), saved as a sentence-transformers folder with both
    heads; returns (None, summary)."""
    base_path = resolve_model(args.model_name)
    heads = m3.heads_folder(base_path)
    if heads is None:
        raise UsageError(f"--backend flagembedding needs a BGE-M3 model: {args.model_name} has no "
                         f"{' / '.join(m3.HEADS)} (use the default backend for dense-only models)")  # fmt: skip
    rows = read_jsonl(args.train_data, Triplet, made_by=SYNTH_COMMAND)
    is_main = int(os.environ.get("RANK", "0")) == 0
    work = Path(tempfile.mkdtemp(prefix="flagembedding-"))
    try:
        started = time.perf_counter()
        trained = m3.finetune_unified(
            args, Path(base_path), rows, work, pick_precision(pick_device(args.device))
        )
        wall = time.perf_counter() - started
        summary = {
            "base_model": args.model_name,
            "base_model_path": base_path,
            "backend": "flagembedding (unified fine-tuning: dense + sparse + ColBERT, self-distillation)",
            "output_dir": str(args.output_dir),
            "wall_time_s": round(wall, 2),
            "train_rows": len(rows),
            "m3_heads": list(m3.HEADS),
            "dev_metrics": {},
            "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }
        if is_main:
            with atomic_path(args.output_dir, is_dir=True) as tmp:
                m3.save_as_sentence_transformer(trained, tmp, args.max_seq_length)
                (tmp / SUMMARY_FILE).write_text(
                    json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None, summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    try:
        check_args(args)
        _, summary = train_unified(args) if args.backend == "flagembedding" else train(args)
    except (UsageError, DataError, ModelNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0 and args.backend == "flagembedding":
        print(
            f"Unified M3 fine-tuning done in {summary['wall_time_s']:.0f} s; model written to {summary['output_dir']}"
        )
    elif int(os.environ.get("RANK", "0")) == 0:
        dev = summary["dev_metrics"].get(DEV_METRIC)
        print(
            f"Trained {summary['steps_this_run']} steps on {summary['device']} ({summary['precision']}) "
            f"in {summary['wall_time_s']:.0f} s "
            f"({summary['examples_per_s_incl_dev_eval']} examples/s incl. dev eval, "
            f"peak {summary['peak_memory_mb']:.0f} MiB"
            + (f", dev nDCG@10 {dev:.4f}" if dev is not None else "")
            + f"); model written to {summary['output_dir']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
