"""Contrastive fine-tuning of a sentence-transformers encoder (default BAAI/bge-m3) on our triplets.

The same command runs on a laptop CPU (``--use_cpu``), Apple MPS, a CUDA GPU, and under
``torchrun --nproc_per_node N`` (DDP) on Azure ML. The flow:

    1. load the triplets, hold out a dev slice of *concepts* for model selection (first: a broken file
       fails in milliseconds, not after loading a 2 GB model)
    2. load the base model (stand-in short name, local folder or Hub id; checked offline first)
    3. optionally mine hard negatives with the base model
    4. loss: in-batch negatives + the row's hard negative (MultipleNegativesRankingLoss), or its
       cached (GradCache) variant for large effective batches in little memory
    5. evaluator: retrieval (nDCG@10 etc.) of the dev queries over the dev passages
    6. training arguments: concept-aware batches, per-side max lengths, prompts, precision, checkpoints
    7. train (``--resume`` continues from the last checkpoint), keep the best dev checkpoint
    8. save atomically: a complete sentence-transformers folder + training_summary.json

    uv run python -m src.train --train_data data/train.jsonl --epochs 1 --batch_size 2 \\
        --max_seq_length 128 --use_cpu --base_model e5-small-offline
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from src import cli, m3
from src.base_model import STANDIN_NAME, load_sentence_transformer, resolve_model
from src.cli import UsageError, UserError
from src.data import SYNTH_COMMAND, Triplet, atomic_path, read_jsonl

logger = logging.getLogger("src.train")

SUMMARY_FILE = "training_summary.json"
DEV_METRIC = "dev_cosine_ndcg@10"
DEV_METRIC_LOGGED = f"eval_{DEV_METRIC}"  # the same metric as the trainer logs it
COLUMNS = ("query", "positive", "negative")
TASKS = {"query": "query", "positive": "document", "negative": "document"}
ATTENTION_DROPOUT = "attention_probs_dropout_prob"  # BERT / XLM-R (bge-m3) config field


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; nothing is saved."""


# ----------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class TrainConfig:
    """Every flag of the stage, parsed once (``parse_args``); the library functions below read this."""

    # model
    base_model: str = "BAAI/bge-m3"
    backend: str = "sentence-transformers"
    max_seq_length: int = 256
    max_query_length: int = 64
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    attention_dropout: float | None = None
    gradient_checkpointing: bool = False
    pad_to_max_length: bool = False
    # data
    train_data: Path = Path("data/train.jsonl")
    dev_ratio: float = 0.1
    max_dev_queries: int = 300
    hard_negatives: str = "row"
    mine_hard_negatives: bool = False
    mining_margin: float = 0.05
    # training
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    loss: str = "mnrl"
    mini_batch_size: int = 8
    gist_margin: float = 0.0
    temperature: float = 0.05
    batching: str = "concept"
    eval_steps: float = 200
    logging_steps: int = 10
    device: str = "auto"
    seed: int = 42
    # output
    merge_base: float = 1.0
    output_dir: Path = Path("outputs/bge-m3-kr")
    overwrite: bool = False
    resume: bool = False

    @property
    def checkpoint_dir(self) -> Path:
        """Trainer checkpoints, beside the output folder (removed once the model is saved)."""
        return self.output_dir.with_name(self.output_dir.name + "-checkpoints")

    def as_dict(self) -> dict:
        """The configuration as JSON values (paths as text), for training_summary.json."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def build_parser() -> cli.ArgumentParser:
    d = TrainConfig()
    p = cli.ArgumentParser(__doc__)
    model = p.add_argument_group("model")
    model.add_argument("--base_model", type=cli.model_name, default=d.base_model,
                       help=f"the model to fine-tune: Hub id, local folder, or '{STANDIN_NAME}'")  # fmt: skip
    model.add_argument("--backend", choices=["sentence-transformers", "flagembedding"], default=d.backend,
                       help="flagembedding: BGE-M3 unified fine-tuning of dense, sparse and ColBERT heads (M3 models only)")  # fmt: skip
    model.add_argument("--max_seq_length", type=cli.number(int, 8), default=d.max_seq_length,
                       help="max tokens of a passage")  # fmt: skip
    model.add_argument("--max_query_length", type=cli.number(int, 4), default=d.max_query_length,
                       help="max tokens of a query")  # fmt: skip
    model.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (merged into the saved model)"
    )
    model.add_argument("--lora_r", type=cli.positive_int, default=d.lora_r)
    model.add_argument("--lora_alpha", type=cli.positive_int, default=d.lora_alpha)
    model.add_argument(
        "--freeze_embeddings", action="store_true", help="do not train the word-embedding matrix"
    )
    model.add_argument("--freeze_layers", type=cli.non_negative_int, default=d.freeze_layers,
                       help="freeze the embedding block and the first N encoder layers (no backward pass through them)")  # fmt: skip
    model.add_argument("--attention_dropout", type=cli.number(float, 0, 1, open_high=True), default=None,
                       help="attention-probability dropout while training (default: the model's own, 0.1 for "
                            "BERT/XLM-R). 0 lets CPU attention use its fused kernel: forward passes about 1.4x faster")  # fmt: skip
    model.add_argument(
        "--gradient_checkpointing", action="store_true", help="trade compute for activation memory"
    )
    model.add_argument("--pad_to_max_length", action="store_true",
                       help="pad every batch to its max length (legacy fixed-shape batches; slower, for comparison)")  # fmt: skip

    data = p.add_argument_group("data")
    data.add_argument("--train_data", type=cli.input_file, default=str(d.train_data), help="triplets JSONL")
    data.add_argument("--dev_ratio", type=cli.number(float, 0, 0.5, open_high=True), default=d.dev_ratio,
                      help="share of training concepts held out as dev")  # fmt: skip
    data.add_argument("--max_dev_queries", type=cli.positive_int, default=d.max_dev_queries)
    data.add_argument("--hard_negatives", choices=["row", "none"], default=d.hard_negatives,
                      help="row: each row's hard negative joins the in-batch negatives; none: query-positive pairs "
                           "only (in-batch negatives; a third fewer passages to encode per step)")  # fmt: skip
    data.add_argument(
        "--mine_hard_negatives", action="store_true", help="replace negatives mined by the base model"
    )
    data.add_argument("--mining_margin", type=cli.number(float, 0, 1), default=d.mining_margin,
                      help="skip candidates scoring above (positive score - margin): likely false negatives")  # fmt: skip

    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=cli.positive_float, default=d.epochs)
    train.add_argument("--max_steps", type=cli.number(int, -1), default=d.max_steps,
                       help="stop after this many steps (overrides --epochs; -1: run the epochs)")  # fmt: skip
    train.add_argument("--batch_size", type=cli.number(int, 2), default=d.batch_size,
                       help="rows per device and step (at least 2: in-batch negatives need other rows)")  # fmt: skip
    train.add_argument(
        "--gradient_accumulation_steps", type=cli.positive_int, default=d.gradient_accumulation_steps
    )
    train.add_argument(
        "--learning_rate", type=cli.number(float, 0, 1, open_low=True), default=d.learning_rate
    )
    train.add_argument("--warmup_ratio", type=cli.number(float, 0, 1, open_high=True), default=d.warmup_ratio)
    train.add_argument("--loss", choices=["mnrl", "cached_mnrl", "gist", "cached_gist"], default=d.loss,
                       help="mnrl: in-batch negatives; cached_mnrl: GradCache, big batches in little memory; gist / "
                            "cached_gist: the same, with the base model as a guide that drops likely false negatives")  # fmt: skip
    train.add_argument("--mini_batch_size", type=cli.positive_int, default=d.mini_batch_size,
                       help="chunk size of the cached losses")  # fmt: skip
    train.add_argument("--gist_margin", type=cli.number(float, 0, 1, open_high=True), default=d.gist_margin,
                       help="gist: drop an in-batch negative when the guide scores it above (positive score - margin)")  # fmt: skip
    train.add_argument("--temperature", type=cli.number(float, 0, 1, open_low=True), default=d.temperature,
                       help="softmax temperature of the contrastive loss (logits = cosine / temperature)")  # fmt: skip
    train.add_argument("--batching", choices=["concept", "random"], default=d.batching,
                       help="concept: no concept twice in a batch (no false in-batch negatives)")  # fmt: skip
    train.add_argument("--eval_steps", type=cli.positive_float, default=d.eval_steps,
                       help="evaluate and checkpoint every N steps; below 1, a share of the run (0.5: halfway and at the end)")  # fmt: skip
    train.add_argument("--logging_steps", type=cli.positive_int, default=d.logging_steps)
    train.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default=d.device,
                       help="auto: CUDA, then MPS, then CPU; cuda or mps: that device or stop with an error, never a silent CPU run")  # fmt: skip
    train.add_argument("--use_cpu", action="store_true",
                       help="train on CPU even if CUDA or MPS is available (= --device cpu)")  # fmt: skip
    train.add_argument("--seed", type=int, default=d.seed)

    out = p.add_argument_group("output")
    out.add_argument("--merge_base", type=cli.number(float, 0, 1, open_low=True), default=d.merge_base,
                     help="save alpha * fine-tuned + (1 - alpha) * base weights (WiSE-FT model merging against "
                          "forgetting); 1 keeps the fine-tuned weights")  # fmt: skip
    out.add_argument("--output_dir", type=cli.output_path, default=d.output_dir)
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing output folder that is not a previous training run")  # fmt: skip
    out.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint of an interrupted run"
    )
    return p


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The stage's configuration; flags that contradict each other raise UsageError."""
    args = build_parser().parse_args(argv)
    if args.use_cpu and args.device not in ("auto", "cpu"):
        raise UsageError(f"--use_cpu contradicts --device {args.device}; pass one of them")
    args.device = "cpu" if args.use_cpu else args.device
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def check_config(config: TrainConfig) -> None:
    """Reject flag combinations that cannot work and an output folder we must not overwrite."""
    c = config
    if c.lora and (c.freeze_embeddings or c.freeze_layers):
        raise UsageError("--lora already freezes every base weight; drop --freeze_embeddings/--freeze_layers")
    if c.max_steps == 0:
        raise UsageError("--max_steps must be -1 (run the epochs) or a positive number of steps")
    if c.eval_steps > 1 and not float(c.eval_steps).is_integer():
        raise UsageError("--eval_steps must be a whole number of steps, or a share of the run in (0, 1)")
    if c.mine_hard_negatives and c.hard_negatives == "none":
        raise UsageError("--mine_hard_negatives needs --hard_negatives row")
    if c.backend == "flagembedding":
        unsupported = [f for f in ("lora", "freeze_embeddings", "freeze_layers", "mine_hard_negatives", "resume",
                                   "pad_to_max_length", "gradient_checkpointing") if getattr(c, f)]  # fmt: skip
        unsupported += ["attention_dropout"] if c.attention_dropout is not None else []
        unsupported += ["merge_base"] if c.merge_base != 1 else []
        unsupported += ["hard_negatives"] if c.hard_negatives != "row" else []
        if unsupported or c.loss != "mnrl" or c.batching != "concept":
            raise UsageError("--backend flagembedding supports the data, length, batch, learning-rate, epoch/step, "
                             f"temperature and seed flags only; drop --{', --'.join(unsupported) or 'loss/--batching'}")  # fmt: skip
    out = c.output_dir
    if out.exists() and not (out / SUMMARY_FILE).exists() and not c.overwrite:
        raise UsageError(f"{out} exists and is not a previous training run; choose another --output_dir "
                         "or pass --overwrite")  # fmt: skip
    if c.resume and not last_checkpoint(c.checkpoint_dir):
        raise UsageError(f"--resume: no checkpoint in {c.checkpoint_dir} to resume from")


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


def load_model(path: str, config: TrainConfig, device: str):
    """Load the encoder, set per-side max lengths, and apply the adaptation mode."""
    config_kwargs = None
    if config.attention_dropout is not None:
        base_dropout = getattr(load_sentence_transformer(path)[0].auto_model.config, ATTENTION_DROPOUT, None)
        if base_dropout is None:
            raise UsageError(f"--attention_dropout: {path} has no {ATTENTION_DROPOUT} in its config")
        config_kwargs = {ATTENTION_DROPOUT: config.attention_dropout}
    model = load_sentence_transformer(path, device, config_kwargs=config_kwargs)
    transformer = model[0]
    if config_kwargs:
        # the attention modules were built with the training value; the saved config keeps the base's own
        setattr(transformer.auto_model.config, ATTENTION_DROPOUT, base_dropout)
    transformer.max_seq_length = config.max_seq_length
    transformer.query_length = config.max_query_length
    transformer.document_length = config.max_seq_length
    if config.pad_to_max_length:
        transformer.processing_kwargs = {**transformer.processing_kwargs, "text": {"padding": "max_length"}}
    model.model_card_data.language = ["ko"]
    model.model_card_data.model_name = (
        f"{config.base_model} fine-tuned for Korean electrical/electronics retrieval"
    )
    if config.freeze_embeddings:
        transformer.auto_model.get_input_embeddings().weight.requires_grad_(False)
    if config.freeze_layers:
        encoder = transformer.auto_model
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        if layers is None or config.freeze_layers >= len(layers):
            count = "no encoder.layer list" if layers is None else f"{len(layers)} layers"
            raise UsageError(
                f"--freeze_layers {config.freeze_layers}: the model has {count}; leave at least one to train"
            )
        encoder.embeddings.requires_grad_(False)
        for layer in layers[: config.freeze_layers]:
            layer.requires_grad_(False)
    if config.lora:
        from peft import LoraConfig

        model.add_adapter(
            LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
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


def make_loss(config: TrainConfig, model, base_path: str, device: str):
    """The contrastive loss: in-batch negatives plus each row's hard negative, logits = cosine / temperature.
    The gist losses load the base model again as a frozen guide: an in-batch negative that the guide scores
    above the row's positive (minus --gist_margin) is treated as a likely false negative and ignored."""
    from sentence_transformers.sentence_transformer import losses

    if config.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model, scale=1 / config.temperature)
    if config.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(
            model, scale=1 / config.temperature, mini_batch_size=config.mini_batch_size
        )
    guide = load_sentence_transformer(base_path, device).requires_grad_(False)
    guide[0].max_seq_length = config.max_seq_length
    options = {"temperature": config.temperature, "margin_strategy": "absolute", "margin": config.gist_margin}
    if config.loss == "cached_gist":
        return losses.CachedGISTEmbedLoss(model, guide, mini_batch_size=config.mini_batch_size, **options)
    return losses.GISTEmbedLoss(model, guide, **options)


def merge_with_base(model, base_path: str, alpha: float) -> None:
    """WiSE-FT: set every floating-point weight of the encoder to alpha * fine-tuned + (1 - alpha) * base,
    in place. The base must have the same architecture (it is the model training started from)."""
    import torch

    tuned = model[0].auto_model
    base = load_sentence_transformer(base_path)[0].auto_model.state_dict()
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


def load_splits(config: TrainConfig) -> Splits:
    """The triplets, with a dev slice of concepts held out; enough training rows for one batch."""
    rows = read_jsonl(config.train_data, Triplet, made_by=SYNTH_COMMAND)
    splits = split_dev(rows, config.dev_ratio, config.seed)
    if len(splits.train) < config.batch_size:
        raise UsageError(
            f"{config.train_data}: {len(splits.train)} training rows left, fewer than --batch_size"
        )
    return splits


def training_arguments(config: TrainConfig, model, splits: Splits, columns: tuple[str, ...], device: str,
                       evaluate: bool, world_size: int):  # fmt: skip
    """The trainer's arguments: concept-aware batches, the model's query/document prompts per column,
    precision for the device, dev evaluation and checkpoints every --eval_steps, MLflow when configured."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    passage_prompt = passage_prompt_name(model)
    prompts = {"query": model.prompts.get("query")}
    for column in ("positive", "negative"):
        prompts[column] = model.prompts.get(passage_prompt) if passage_prompt else None
    prompts = {c: p for c, p in prompts.items() if p and c in columns}
    if config.batching == "concept":
        concepts = [(r.concept_id, r.negative_concept_id) for r in splits.train]
        batch_sampler = functools.partial(ConceptBatchSampler, concepts=concepts)
    else:
        batch_sampler = BatchSamplers.BATCH_SAMPLER
    precision = pick_precision(device)
    steps = config.eval_steps if config.eval_steps < 1 else int(config.eval_steps)
    return SentenceTransformerTrainingArguments(
        output_dir=str(config.checkpoint_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,
        weight_decay=0.01,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        activation_checkpointing=config.gradient_checkpointing,
        batch_sampler=batch_sampler,
        prompts=prompts or None,
        router_mapping={c: TASKS[c] for c in columns},
        eval_strategy="steps" if evaluate else "no",
        eval_steps=steps,
        save_strategy="steps",
        save_steps=steps,
        save_total_limit=2,
        load_best_model_at_end=evaluate,
        metric_for_best_model=DEV_METRIC_LOGGED if evaluate else None,
        greater_is_better=True,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to=["mlflow"] if os.environ.get("MLFLOW_TRACKING_URI") else "none",
        run_name=config.output_dir.name,
        seed=config.seed,
        data_seed=config.seed,
        ddp_backend="gloo" if world_size > 1 and device == "cpu" else None,
        dataloader_drop_last=world_size > 1,
    )


def check_finite(tensors: Iterable, train_loss: float | None) -> None:
    """Raise TrainingDiverged when the loss or any weight in ``tensors`` is NaN or infinite (a learning rate
    too high, fp16 overflow, a broken base model): such a model must not be saved, let alone registered."""
    import torch

    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point())
    if bad or (train_loss is not None and not math.isfinite(train_loss)):
        raise TrainingDiverged(f"training diverged: loss {train_loss}, {bad:,} non-finite weights; nothing was "
                               "saved (lower --learning_rate, or train in fp32)")  # fmt: skip


def save_model(model, config: TrainConfig, base_path: str, summary: dict) -> None:
    """Fold LoRA adapters in, merge with the base (WiSE-FT), and write the folder atomically with the M3
    heads of the base (unchanged) and training_summary.json; the checkpoints are removed afterwards."""
    if config.lora:
        merge_lora(model)
    if config.merge_base != 1:
        merge_with_base(model, base_path, config.merge_base)
    with atomic_path(config.output_dir, is_dir=True) as tmp:
        model.save(str(tmp))
        summary["m3_heads"] = m3.carry_heads(base_path, tmp) or None  # sparse/ColBERT heads, unchanged
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    shutil.rmtree(config.checkpoint_dir, ignore_errors=True)


def train(config: TrainConfig):
    """Run the whole flow; returns (trained model, summary dict)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    is_main = int(os.environ.get("RANK", "0")) == 0
    device = pick_device(config.device)

    # 1. data, with a dev slice of concepts
    splits = load_splits(config)

    # 2. model
    base_path = resolve_model(config.base_model)
    model = load_model(base_path, config, device)

    # 3. optional hard-negative mining with the base model
    if config.mine_hard_negatives:
        splits.train = mine_hard_negatives(model, splits.train, config.mining_margin, config.batch_size * 4)
    columns = COLUMNS if config.hard_negatives == "row" else COLUMNS[:2]
    train_dataset = Dataset.from_dict({c: [getattr(r, c) for r in splits.train] for c in columns})

    # 4. loss
    loss = make_loss(config, model, base_path, device)

    # 5. evaluator
    evaluator = dev_evaluator(splits.dev, config.max_dev_queries, config.seed) if splits.dev else None

    # 6. training arguments
    args = training_arguments(config, model, splits, columns, device, evaluator is not None, world_size)

    # 7. train, keep the best dev checkpoint, refuse a diverged model
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator
    )
    resume_from = last_checkpoint(config.checkpoint_dir) if config.resume else None
    start_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
    if not resume_from and is_main and config.checkpoint_dir.exists():
        shutil.rmtree(config.checkpoint_dir)  # stale checkpoints of an earlier, unfinished run
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    wall = time.perf_counter() - started
    try:
        check_finite(model.parameters(), result.training_loss)
    except TrainingDiverged:
        if is_main:  # the checkpoints diverged too: nothing worth resuming from
            shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
        raise
    final_dev = dev_metrics_of_best(trainer.state) or (evaluator(model) if evaluator else {})

    # 8. save (rank 0 only), atomically
    steps_run = trainer.state.global_step - start_step
    examples = steps_run * config.batch_size * config.gradient_accumulation_steps * world_size
    losses_logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {
        "base_model": config.base_model,
        "base_model_path": base_path,
        "output_dir": str(config.output_dir),
        "device": device,
        "precision": pick_precision(device),
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
            "train_file": str(config.train_data),
            "train_rows": len(splits.train),
            "train_concepts": len({r.concept_id for r in splits.train}),
            "dev_rows": len(splits.dev),
            "dev_concepts": len({r.concept_id for r in splits.dev}),
            "hard_negatives_mined": config.mine_hard_negatives,
            "columns": list(train_dataset.column_names),
        },
        "arguments": config.as_dict(),
    }
    if is_main:
        save_model(model, config, base_path, summary)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # torchrun: release the process group before exit
    return model, summary


def train_unified(config: TrainConfig):
    """The flagembedding backend: FlagEmbedding's unified fine-tuning of an M3 model (dense, sparse and
    ColBERT trained together with self-distillation), saved as a sentence-transformers folder with both
    heads; returns (None, summary)."""
    base_path = resolve_model(config.base_model)
    heads = m3.heads_folder(base_path)
    if heads is None:
        raise UsageError(f"--backend flagembedding needs a BGE-M3 model: {config.base_model} has no "
                         f"{' / '.join(m3.HEADS)} (use the default backend for dense-only models)")  # fmt: skip
    rows = read_jsonl(config.train_data, Triplet, made_by=SYNTH_COMMAND)
    is_main = int(os.environ.get("RANK", "0")) == 0
    work = Path(tempfile.mkdtemp(prefix="flagembedding-"))
    try:
        started = time.perf_counter()
        trained = m3.finetune_unified(
            config, Path(base_path), rows, work, pick_precision(pick_device(config.device))
        )
        wall = time.perf_counter() - started
        check_finite(m3.saved_tensors(trained), None)
        summary = {
            "base_model": config.base_model,
            "base_model_path": base_path,
            "backend": "flagembedding (unified fine-tuning: dense + sparse + ColBERT, self-distillation)",
            "output_dir": str(config.output_dir),
            "wall_time_s": round(wall, 2),
            "train_rows": len(rows),
            "m3_heads": list(m3.HEADS),
            "dev_metrics": {},
            "arguments": config.as_dict(),
        }
        if is_main:
            with atomic_path(config.output_dir, is_dir=True) as tmp:
                m3.save_as_sentence_transformer(trained, tmp, config.max_seq_length)
                (tmp / SUMMARY_FILE).write_text(
                    json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None, summary


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    check_config(config)
    _, summary = train_unified(config) if config.backend == "flagembedding" else train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if config.backend == "flagembedding":
        print(
            f"Unified M3 fine-tuning done in {summary['wall_time_s']:.0f} s; model written to {summary['output_dir']}"
        )
        return 0
    dev = summary["dev_metrics"].get(DEV_METRIC)
    print(
        f"Trained {summary['steps_this_run']} steps on {summary['device']} ({summary['precision']}) "
        f"in {summary['wall_time_s']:.0f} s ({summary['examples_per_s_incl_dev_eval']} examples/s incl. dev eval, "
        f"peak {summary['peak_memory_mb']:.0f} MiB" + (f", dev nDCG@10 {dev:.4f}" if dev is not None else "")
        + f"); model written to {summary['output_dir']}"
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
