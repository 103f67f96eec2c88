"""The main job: synthesize data, fine-tune, evaluate, and print the side-by-side table.

Each stage runs only when its inputs changed: a stage's key is a hash of its input files and its
arguments, stored next to its output; a re-run with the same key reuses the output (no retraining
when only the evaluation changes).

    uv run python -m src.pipeline                          # offline, laptop-sized, stand-in base model
    uv run python -m src.pipeline --base_model BAAI/bge-m3 --profile gpu
    uv run python -m src.pipeline --train_args "--max_steps 50" --eval_args "--sample_size 200"

Profiles set the training flags; ``--synth_args``, ``--train_args`` and ``--eval_args`` append any of
the stages' own flags (later flags win).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from src import evaluate, synth_data, train
from src.base_model import STANDIN_NAME

# The training recipe both profiles share, chosen on the independent sets' dev part (bench/recipes.py,
# README "레시피 후보"): noisy query copies, English<->Korean rows and general-language rows in the data,
# and the saved model interpolated with its base (WiSE-FT, 0.7 fine-tuned + 0.3 base)
RECIPE_SYNTH = ["--query_noise", "0.3", "--cross_lingual", "2", "--general_share", "0.1"]
RECIPE_TRAIN = ["--merge_base", "0.7"]
PROFILES = {
    # 2 CPU cores, about 10 minutes of training: embeddings and lower 3 layers frozen, no attention dropout
    # (CPU attention then runs its fused kernel), short queries, fixed steps, a sharper softmax (temperature
    # 0.02, as BGE's own fine-tuning) that lets the upper layers learn more per step, and (query, positive)
    # pairs without the row's hard negative: a third less compute per step, no loss on the dev sets
    "laptop": {
        "synth": RECIPE_SYNTH,
        "train": ["--use_cpu", "--freeze_layers", "3", "--attention_dropout", "0", "--batch_size", "16",
                  "--max_seq_length", "128", "--max_steps", "130", "--learning_rate", "1e-4", "--temperature",
                  "0.02", "--eval_steps", "0.5", "--dev_ratio", "0.05", "--max_dev_queries", "150",
                  "--hard_negatives", "none", *RECIPE_TRAIN],
    },
    # one or more GPUs (CUDA or stop): the whole training split, larger batches, full fine-tuning, the rows'
    # hard negatives
    "gpu": {
        "synth": RECIPE_SYNTH,
        "train": ["--device", "cuda", "--batch_size", "64", "--max_seq_length", "256", "--epochs", "2",
                  "--learning_rate", "2e-5", "--eval_steps", "100", *RECIPE_TRAIN],
    },
}  # fmt: skip
STAMP = ".pipeline_key"  # <output>.pipeline_key beside each stage's output holds its input key


def digest(paths: list[Path], argv: list[str]) -> str:
    """Hash of the input files' bytes (folders: every file in them) and the stage arguments."""
    h = hashlib.sha256(json.dumps(argv).encode())
    for path in paths:
        if not path.exists():
            h.update(f"missing:{path}".encode())
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def run_stage(
    name: str, stage: Callable[[list[str]], int], argv: list[str], inputs: list[Path], output: Path
) -> float:
    """Run one stage unless ``output`` carries the same key; returns the seconds spent (0 when reused)."""
    key = digest(inputs, argv)
    stamp = output.with_name(output.name + STAMP)
    if output.exists() and stamp.exists() and stamp.read_text() == key:
        print(f"[{name}] inputs unchanged: reusing {output}", file=sys.stderr)
        return 0.0
    print(f"[{name}] python -m src.{name} {shlex.join(argv)}", file=sys.stderr)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stage chatter to stderr; stdout carries the final table
        code = stage(argv)
    if code != 0:
        raise SystemExit(code)
    stamp.write_text(key)
    return time.perf_counter() - started


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--base_model", default=STANDIN_NAME, help="base model to fine-tune (Hub id, folder, stand-in)"
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="laptop")
    p.add_argument("--work_dir", type=Path, default=Path("outputs/pipeline"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--synth_args", default="", help="extra flags for src.synth_data")
    p.add_argument("--train_args", default="", help="extra flags for src.train")
    p.add_argument("--eval_args", default="", help="extra flags for src.evaluate")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data, model, report = args.work_dir / "data", args.work_dir / "model", args.work_dir / "report"
    seed = ["--seed", str(args.seed)]
    profile = PROFILES[args.profile]
    synth_argv = ["--output-dir", str(data), *seed, *profile["synth"], *shlex.split(args.synth_args)]
    train_argv = [
        "--model_name", args.base_model, "--train_data", str(data / "train.jsonl"), "--output_dir", str(model),
        *profile["train"], *seed, *shlex.split(args.train_args),
    ]  # fmt: skip
    eval_argv = [
        "--model_path", str(model), "--test_data", str(data / "test.jsonl"), "--corpus",
        str(data / "corpus_test.jsonl"), "--report_dir", str(report), *seed, *shlex.split(args.eval_args),
    ]  # fmt: skip
    sources = [
        Path(p)
        for p in (
            "data/glossary_ko.jsonl",
            "data/terms_electronics_ko.txt",
            "data/acronyms_ko.jsonl",
            "data/general_ko_pairs.jsonl",
        )
    ]
    eval_inputs = [
        model,
        data / "test.jsonl",
        data / "corpus_test.jsonl",
        Path("data/sts_ko_sample.tsv"),
        Path("data/eval"),
    ]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        times = {
            "synth_data": run_stage("synth_data", synth_data.main, synth_argv, sources, data),
            "train": run_stage("train", train.main, train_argv, [data / "train.jsonl"], model),
            "evaluate": run_stage("evaluate", evaluate.main, eval_argv, eval_inputs, report),
        }
    except SystemExit as e:
        print(f"error: the pipeline stopped at a failing stage (exit code {e.code})", file=sys.stderr)
        return int(e.code or 1)
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    print("\n" + evaluate.lead_table(metrics) + "\n\n" + evaluate.console_table(metrics))
    print("Stage wall time: " + ", ".join(f"{k} {v:.0f} s" if v else f"{k} reused" for k, v in times.items()))
    print(f"Report: {report / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
