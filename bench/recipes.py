"""Training-recipe candidates, side by side, on the independent sets' dev part (the part we choose on).

Each candidate is src.pipeline's laptop profile with its recipe switched off (PLAIN) and some synth_data
and train flags added; it runs synth -> train -> evaluate in its own work folder (--eval_part dev, no
baseline), and the untrained base model is evaluated once the same way. The table gives every set's headline metric per candidate and,
under it, the gain over the base; the synthetic split and STS sit beside them.

    uv run python bench/recipes.py                                  # every candidate, ~15 minutes each on 2 CPU cores
    uv run python bench/recipes.py --candidates plain noise cross_lingual
    uv run python bench/recipes.py --candidates recipe --seeds 42 1 2 --part dev

The test part is never read here: choose on dev, report test (src.pipeline prints it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src import evaluate, pipeline, synth_data  # noqa: E402
from src.base_model import STANDIN_NAME, resolve_model  # noqa: E402

# Every candidate starts from PLAIN, the laptop profile with its recipe switched off (the training setup
# alone: frozen lower layers, temperature 0.02, 130 steps of triplets), and adds its own flags; later flags win.
# "recipe" is the laptop profile as src.pipeline runs it.
PLAIN = (["--query_noise", "0", "--cross_lingual", "0", "--general_share", "0"],
         ["--hard_negatives", "row", "--merge_base", "1"])  # fmt: skip
NOISE_CROSS_GENERAL = ["--query_noise", "0.3", "--cross_lingual", "2", "--general_share", "0.1"]
# name -> (extra src.synth_data flags, extra src.train flags), both appended to PLAIN's
CANDIDATES = {
    "plain": ([], []),
    "first_wording": (["--wordings", "first"], []),
    "noise": (["--query_noise", "0.3"], []),
    "cross_lingual": (["--cross_lingual", "2"], []),
    "general": (["--general_share", "0.1"], []),
    "gist": ([], ["--loss", "gist", "--gist_margin", "0.05"]),
    "mining": ([], ["--mine_hard_negatives", "--mining_margin", "0.05"]),
    "merge_0.7": ([], ["--merge_base", "0.7"]),
    "pairs_only": ([], ["--hard_negatives", "none"]),
    "noise+cross+general+pairs": (NOISE_CROSS_GENERAL, ["--hard_negatives", "none"]),
    "noise+cross+general+gist+pairs": (NOISE_CROSS_GENERAL, ["--loss", "gist", "--gist_margin", "0.05",
                                                             "--hard_negatives", "none"]),
    "recipe": (pipeline.RECIPE_SYNTH, ["--hard_negatives", "none", *pipeline.RECIPE_TRAIN]),
}  # fmt: skip
COLUMNS = ["a", "b", "c_ko_en", "c_en_ko", "synthetic"]


def headline(metrics: dict, system: str) -> dict[str, float]:
    """Each set's headline metric (nDCG@10 or MRR@10) of one system, the synthetic split's nDCG@10 and STS."""
    out = {k: t["systems"][system][t["metric"]] for k, t in metrics["independent"]["tasks"].items()}
    out["synthetic"] = metrics["systems"][system]["ndcg@10"]
    out["sts"] = metrics["systems"][system]["sts_spearman"]
    return out


def run_candidate(name: str, seed: int, part: str, work: Path) -> dict[str, float]:
    synth_extra, train_extra = (PLAIN[0] + CANDIDATES[name][0], PLAIN[1] + CANDIDATES[name][1])
    folder = work / f"{name}-seed{seed}"
    argv = ["--output_dir", str(folder), "--seed", str(seed), "--synth_args", shlex.join(synth_extra),
            "--train_args", shlex.join(train_extra), "--eval_args", f"--eval_part {part} --base_model none"]  # fmt: skip
    if pipeline.main(argv) != 0:
        raise SystemExit(f"candidate {name} (seed {seed}) failed")
    metrics = json.loads((folder / "report" / "metrics.json").read_text(encoding="utf-8"))
    return headline(metrics, metrics["roles"]["fine_tuned"])


def run_base(part: str, work: Path) -> dict[str, float]:
    """The untrained stand-in on the same test rows as every candidate (recipe flags add training rows only)."""
    data = work / "plain-seed42" / "data"
    if not data.exists():
        synth_data.main(["--output_dir", str(data), *pipeline.PROFILES["laptop"]["synth"], *PLAIN[0]])
    argv = ["--model", resolve_model(STANDIN_NAME), "--base_model", "none", "--test_data",
            str(data / "test.jsonl"), "--corpus", str(data / "corpus_test.jsonl"), "--eval_part", part,
            "--output_dir", str(work / "base-report")]  # fmt: skip
    if evaluate.main(argv) != 0:
        raise SystemExit("base evaluation failed")
    metrics = json.loads((work / "base-report" / "metrics.json").read_text(encoding="utf-8"))
    return headline(metrics, metrics["roles"]["fine_tuned"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--part", choices=["dev"], default="dev", help="only dev: the test part is for reporting")
    p.add_argument("--output_dir", type=Path, default=ROOT / "outputs" / "bench_recipes")
    args = p.parse_args()

    results = {
        name: [run_candidate(name, seed, args.part, args.output_dir) for seed in args.seeds]
        for name in args.candidates
    }
    base = run_base(args.part, args.output_dir)
    header = f"{'candidate':<32}" + "".join(f"{c:>11}" for c in [*COLUMNS, "sts"])
    print(f"\nRecipe candidates on the independent sets' {args.part} part (stand-in, laptop profile, "
          f"seeds {' '.join(map(str, args.seeds))}); (a), (b), synthetic: nDCG@10; (c): MRR@10; STS: Spearman x100")  # fmt: skip
    print(header)
    print(
        f"{'base (no training)':<32}"
        + "".join(f"{base[c]:>11.4f}" for c in COLUMNS)
        + f"{base['sts']:>11.2f}"
    )
    for name, runs in results.items():
        mean = {c: fmean(r[c] for r in runs) for c in [*COLUMNS, "sts"]}
        print(f"{name:<32}" + "".join(f"{mean[c]:>11.4f}" for c in COLUMNS) + f"{mean['sts']:>11.2f}")
    print("gain over base")
    for name, runs in results.items():
        gain = {c: fmean(r[c] for r in runs) - base[c] for c in [*COLUMNS, "sts"]}
        print(f"{name:<32}" + "".join(f"{gain[c]:>+11.4f}" for c in COLUMNS) + f"{gain['sts']:>+11.2f}")


if __name__ == "__main__":
    main()
