"""Training speed benchmark: the legacy configuration against our laptop defaults, side by side.

Trains the offline stand-in (multilingual-e5-small) for the same number of steps on the same synthetic
data, once per configuration, each in its own process (so peak memory is per configuration), then scores
every trained model and the untrained base on the unseen-concept test split (nDCG@10).

    uv run python bench/train_speed.py            # ~25 minutes on 2 CPU cores
    uv run python bench/train_speed.py --steps 8  # a quick look
    uv run python bench/train_speed.py --steps 100 --configs legacy laptop
    uv run python bench/train_speed.py --steps 100 --configs legacy laptop --seeds 42 1 2  # mean of 3 data orders

Configurations:
    legacy          one max length for both sides, batches padded to it, every weight trained, random batches
    legacy-dynamic  the same, but padded only to the longest text of each batch
    frozen-embeddings  word embeddings frozen, queries capped at 64 tokens, dynamic padding, concept-aware batches
    laptop          src.pipeline's laptop profile: embeddings and the lower 3 of 12 layers frozen (no backward
                    pass through them), no attention dropout (CPU attention runs its fused kernel), queries
                    capped at 64 tokens, dynamic padding, concept-aware batches, the profile's learning rate and
                    temperature (legacy keeps sentence-transformers' default, 0.05)
    laptop-6-layers the laptop profile with the lower 6 layers frozen (faster, learns less per step)
    laptop-attention-dropout  the laptop profile with the model's own attention dropout (0.1)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data import Passage, Triplet, read_jsonl  # noqa: E402
from src.pipeline import PROFILES  # noqa: E402


def laptop_with(flag: str, value: str) -> list[str]:
    """The pipeline's laptop profile with one flag's value replaced."""
    argv = list(PROFILES["laptop"]["train"])
    argv[argv.index(flag) + 1] = value
    return argv


CONFIGS = {
    "legacy": ["--max_query_length", "128", "--pad_to_max_length", "--batching", "random"],
    "legacy-dynamic": ["--max_query_length", "128", "--batching", "random"],
    "frozen-embeddings": ["--freeze_embeddings", "--max_query_length", "64"],
    # the pipeline's laptop profile as is (its learning rate included); the bench sets only the step count
    "laptop": list(PROFILES["laptop"]["train"]),
    # points beside it on the speed/quality frontier
    "laptop-6-layers": laptop_with("--freeze_layers", "6"),
    "laptop-attention-dropout": laptop_with("--attention_dropout", "0.1"),
}


def test_ndcg(model_path: str, data_dir: Path) -> float:
    """nDCG@10 of the test queries over the whole test corpus (relevant = passages of the same concept)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    rows = read_jsonl(data_dir / "test.jsonl", Triplet)
    corpus = read_jsonl(data_dir / "corpus_test.jsonl", Passage)
    evaluator = InformationRetrievalEvaluator(
        queries={f"q{i}": r.query for i, r in enumerate(rows)},
        corpus={p.passage_id: p.text for p in corpus},
        relevant_docs={
            f"q{i}": {p.passage_id for p in corpus if p.concept_id == r.concept_id}
            for i, r in enumerate(rows)
        },
        name="test",
        write_csv=False,
    )
    return evaluator(SentenceTransformer(model_path, device="cpu"))["test_cosine_ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument(
        "--data_seed", type=int, default=42, help="seed of the synthetic data (same for every run)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[42],
        help="one training per seed (data order); nDCG is averaged",
    )
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    if "legacy" not in args.configs:
        parser.error("--configs must include legacy (the reference of the speed ratios)")

    work = Path(tempfile.mkdtemp(prefix="train_speed-"))
    data = work / "data"
    subprocess.run([sys.executable, "-m", "src.synth_data", "--output_dir", str(data), "--seed", str(args.data_seed)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    from src.base_model import resolve_model

    base = resolve_model("e5-small-offline")
    results = {"base (no training)": {"ndcg": [test_ndcg(base, data)]}}
    for name, seed in ((n, s) for n in args.configs for s in args.seeds):
        out = work / f"{name}-seed{seed}"
        cmd = [
            sys.executable, "-m", "src.train", "--base_model", "e5-small-offline", "--train_data",
            str(data / "train.jsonl"), "--output_dir", str(out), "--use_cpu", "--dev_ratio", "0",
            "--max_steps", str(args.steps), "--batch_size", str(args.batch_size),
            "--max_seq_length", str(args.max_seq_length), "--learning_rate", str(args.learning_rate), "--logging_steps", "5", *CONFIGS[name],
            "--seed", str(seed),
            "--max_steps", str(args.steps), "--dev_ratio", "0",  # after the flags: the bench's step count wins
        ]  # fmt: skip
        print(f"[{name}, seed {seed}] training {args.steps} steps ...", file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary = json.loads((out / "training_summary.json").read_text())
        r = results.setdefault(name, {"examples_per_s": [], "peak_mb": [], "ndcg": []})
        # no dev eval here (--dev_ratio 0), so this is the training throughput alone
        r["examples_per_s"].append(summary["examples_per_s_incl_dev_eval"])
        r["peak_mb"].append(summary["peak_memory_mb"])
        r["ndcg"].append(test_ndcg(str(out), data))
    print_table(results, args)


def print_table(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    """One row per configuration: mean examples/s and its ratio to legacy, max peak MiB, mean test nDCG@10,
    the mean per-seed nDCG@10 difference to legacy (same seed = same data order), and each seed's nDCG@10."""
    laptop = PROFILES["laptop"]["train"]
    legacy = results["legacy"]
    print(f"\nTraining speed, stand-in e5-small, {args.steps} steps x batch {args.batch_size}, "
          f"max length {args.max_seq_length}, learning rate {args.learning_rate} (laptop: its profile's "
          f"{laptop[laptop.index('--learning_rate') + 1]}), seeds {' '.join(map(str, args.seeds))}, CPU")  # fmt: skip
    print(f"{'configuration':<26}{'examples/s':>11}{'vs legacy':>10}{'peak MiB':>9}{'nDCG@10':>9}"
          f"{'vs legacy':>11}  per seed")  # fmt: skip
    for name, r in results.items():
        speed = r.get("examples_per_s")
        cells = (
            f"{fmean(speed):>11.2f}{fmean(speed) / fmean(legacy['examples_per_s']):>9.2f}x{max(r['peak_mb']):>9.0f}"
            if speed
            else f"{'-':>11}{'-':>10}{'-':>9}"
        )
        gain = (
            f"{fmean([a - b for a, b in zip(r['ndcg'], legacy['ndcg'], strict=True)]):>+11.4f}"
            if speed
            else f"{'-':>11}"
        )
        print(f"{name:<26}{cells}{fmean(r['ndcg']):>9.4f}{gain}  {' '.join(f'{x:.4f}' for x in r['ndcg'])}")


if __name__ == "__main__":
    main()
