"""The main job: synthesize data, fine-tune, evaluate, and print the side-by-side table.

Each stage runs only when its inputs changed: a stage's key hashes its parsed arguments (defaults
included), the content of every file, folder and model they name, wherever it was passed (a profile,
``--synth_args "--glossary X"``), and the code version; it is stored next to the stage's output, and a
re-run with the same key reuses the output (no retraining when only the evaluation changes).

    uv run python -m src.pipeline                          # offline, laptop-sized, stand-in base model
    uv run python -m src.pipeline --base_model BAAI/bge-m3 --profile gpu
    uv run python -m src.pipeline --train_args "--max_steps 50" --eval_args "--sample_size 200"
    uv run python -m src.pipeline --output_dir outputs/medical --synth_args "--glossary \\
        data/examples/medical_devices/glossary_ko.jsonl --templates data/examples/medical_devices/templates_ko.yaml \\
        --terms '' --acronyms ''" --eval_args "--eval_dir ''"   # another domain, from data files alone

Profiles set the training flags; ``--synth_args``, ``--train_args`` and ``--eval_args`` append any of
the stages' own flags (later flags win).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import shlex
import sys
import time
from pathlib import Path
from types import ModuleType

from src import cli, evaluate, synth_data, train
from src.base_model import STANDIN_NAME, ensure_standin
from src.data import file_digest
from src.domain import DEFAULT_FILE

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
REPO_ROOT = Path(__file__).resolve().parents[1]


def model_digest(name: str) -> str:
    """The content of a model argument: a local folder's files (the stand-in's short name resolved to its
    folder). A Hub id is keyed by its name: its cache fills in as it is used (the M3 heads are fetched
    when the model is saved), so hashing the cache would re-run a stage for nothing."""
    if name == STANDIN_NAME:
        return file_digest(ensure_standin())
    folder = Path(name).expanduser()
    if folder.exists():
        return file_digest(folder)
    return hashlib.sha256(f"hub:{name}".encode()).hexdigest()


@functools.cache
def code_version() -> str:
    """The project's version and a hash of its source (src/*.py) and of the default domain file, which the
    code reads without a flag (report labels): a new release or edited code re-runs every stage."""
    version = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    sources = "".join(file_digest(p) for p in [*sorted((REPO_ROOT / "src").glob("*.py")), DEFAULT_FILE])
    return f"{version.group(1) if version else '?'}+{hashlib.sha256(sources.encode()).hexdigest()[:16]}"


def stage_key(module: ModuleType, argv: list[str]) -> str:
    """A stage's input key: its *parsed* arguments (defaults included), the content of every file, folder
    or model any of them names (cli.inputs_of), and the code version. Parsing also checks the flags."""
    parser = module.build_parser()
    args = parser.parse_args(argv)
    h = hashlib.sha256(code_version().encode())
    h.update(json.dumps({k: str(v) for k, v in sorted(vars(args).items())}, ensure_ascii=False).encode())
    for dest, value, is_model in cli.inputs_of(parser, args):
        content = model_digest(str(value)) if is_model else file_digest(Path(value))
        h.update(f"{dest}={value}:{content}".encode())
    return h.hexdigest()


def run_stage(name: str, module: ModuleType, argv: list[str], output: Path) -> float:
    """Run one stage unless ``output`` carries the same key; returns the seconds spent (0 when reused)."""
    key = stage_key(module, argv)
    stamp = output.with_name(output.name + STAMP)
    if output.exists() and stamp.exists() and stamp.read_text() == key:
        print(f"[{name}] inputs unchanged: reusing {output}", file=sys.stderr)
        return 0.0
    print(f"[{name}] python -m src.{name} {shlex.join(argv)}", file=sys.stderr)
    stamp.unlink(missing_ok=True)  # a stage that fails leaves no key that could match its old output
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stage chatter to stderr; stdout carries the final table
        code = module.main(argv)
    if code != 0:
        raise StageFailed(name, code)
    stamp.write_text(key)
    return time.perf_counter() - started


class StageFailed(Exception):
    """A stage exited non-zero (it printed its own error)."""

    def __init__(self, name: str, code: int):
        super().__init__(f"the pipeline stopped at {name} (exit code {code})")
        self.code = code


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument("--base_model", type=cli.model_name, default=STANDIN_NAME,
                   help="base model to fine-tune (Hub id, folder, stand-in)")  # fmt: skip
    p.add_argument("--profile", choices=sorted(PROFILES), default="laptop")
    p.add_argument("--output_dir", type=cli.output_path, default=Path("outputs/pipeline"),
                   help="work folder: data/, model/ and report/ inside")  # fmt: skip
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--synth_args", default="", help="extra flags for src.synth_data")
    p.add_argument("--train_args", default="", help="extra flags for src.train")
    p.add_argument("--eval_args", default="", help="extra flags for src.evaluate")
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.output_dir
    data, model, report = work / "data", work / "model", work / "report"
    seed = ["--seed", str(args.seed)]
    profile = PROFILES[args.profile]
    try:
        extra = {k: shlex.split(getattr(args, f"{k}_args")) for k in ("synth", "train", "eval")}
    except ValueError as e:
        raise cli.UsageError(f"--synth_args/--train_args/--eval_args: {e}") from None
    synth_argv = ["--output_dir", str(data), *seed, *profile["synth"], *extra["synth"]]
    train_argv = [
        "--base_model", args.base_model, "--train_data", str(data / "train.jsonl"), "--output_dir", str(model),
        *profile["train"], *seed, *extra["train"],
    ]  # fmt: skip
    try:
        times = {
            "synth_data": run_stage("synth_data", synth_data, synth_argv, data),
            "train": run_stage("train", train, train_argv, model),
        }
        base = train.parse_args(train_argv).base_model  # the base train used (--train_args may name another)
        eval_argv = [
            "--model", str(model), "--base_model", base, "--test_data", str(data / "test.jsonl"),
            "--corpus", str(data / "corpus_test.jsonl"), "--output_dir", str(report), *seed, *extra["eval"],
        ]  # fmt: skip
        times["evaluate"] = run_stage("evaluate", evaluate, eval_argv, report)
    except StageFailed as e:  # the stage printed its own one-line error
        print(f"[pipeline] {e}", file=sys.stderr)
        return e.code
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    print("\n" + evaluate.lead_table(metrics) + "\n\n" + evaluate.console_table(metrics))
    print("Stage wall time: " + ", ".join(f"{k} {v:.0f} s" if v else f"{k} reused" for k, v in times.items()))
    print(f"Report: {report / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
