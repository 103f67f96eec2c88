"""Quality gate: decide from src.evaluate's metrics.json whether a fine-tuned model may be registered.

Passes only when the fine-tuned model beats its base model on the held-out (unseen-concept) split by
the configured nDCG@10 margin, the paired-bootstrap interval of that gain lies above zero, and general
Korean understanding (STS Spearman ×100) dropped by no more than the allowed points.

    uv run python -m src.gate --metrics outputs/pipeline/report/metrics.json --min_ndcg_gain 0.02 --max_sts_drop 2

Exit code 0: pass, 1: fail (each failed check is printed), 2: the metrics file is missing or malformed
(not JSON, a value that is not a finite number: it fails closed, never passes on NaN or Infinity).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from src import cli
from src.cli import UserError


class MalformedMetrics(UserError):
    """metrics.json is missing, not JSON, or lacks what the gate reads."""


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number the gate can compare")


def load_metrics(path: Path) -> dict:
    """The metrics object; NaN and Infinity (which Python's json accepts) are refused."""
    if not path.is_file():
        raise MalformedMetrics(f"{path}: {'not a regular file' if path.exists() else 'file not found'}")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise MalformedMetrics(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(metrics, dict):
        raise MalformedMetrics(f"{path}: expected a JSON object")
    return metrics


def _number(metrics: dict, *keys: str, optional: bool = False) -> float | None:
    """The finite number at ``keys``; ``optional``: null is allowed (returned as None)."""
    value = metrics
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise MalformedMetrics(f"metrics.json lacks {'.'.join(keys)}")
        value = value[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedMetrics(f"metrics.json: {'.'.join(keys)} must be a finite number, got {value!r:.40}")
    return value


def evaluate_gate(metrics: dict, min_ndcg_gain: float, max_sts_drop: float) -> list[Check]:
    """The gate's checks, in order; all must pass."""
    roles = metrics.get("roles")
    if not isinstance(roles, dict) or not all(
        isinstance(roles.get(r), str) for r in ("fine_tuned", "baseline")
    ):
        raise MalformedMetrics(
            "metrics.json has no fine-tuned and baseline roles (run src.evaluate with a baseline)"
        )
    tuned, base = roles["fine_tuned"], roles["baseline"]
    gain = _number(metrics, "systems", tuned, "ndcg@10") - _number(metrics, "systems", base, "ndcg@10")
    low = _number(metrics, "bootstrap", base, "low")
    sts_tuned = _number(metrics, "systems", tuned, "sts_spearman", optional=True)
    sts_base = _number(metrics, "systems", base, "sts_spearman", optional=True)
    checks = [
        Check("ndcg_gain", gain >= min_ndcg_gain, f"nDCG@10 gain {gain:+.4f} (need >= {min_ndcg_gain:+.4f})"),
        Check("gain_significant", low > 0, f"95% CI lower bound of the gain {low:+.4f} (need > 0)"),
    ]
    if sts_tuned is None or sts_base is None:
        checks.append(Check("sts_retention", False, "no STS score in metrics.json (evaluate with --sts)"))
    else:
        drop = sts_base - sts_tuned
        checks.append(
            Check(
                "sts_retention",
                drop <= max_sts_drop,
                f"STS drop {drop:+.2f} points (allowed {max_sts_drop:.2f})",
            )
        )
    return checks


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument("--metrics", type=Path, required=True, help="metrics.json written by src.evaluate")
    p.add_argument("--min_ndcg_gain", type=cli.number(float, -1, 1), default=0.02,
                   help="required nDCG@10 gain over the base model")  # fmt: skip
    p.add_argument("--max_sts_drop", type=cli.number(float, 0, 100), default=2.0,
                   help="allowed STS Spearman×100 drop")  # fmt: skip
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    checks = evaluate_gate(load_metrics(args.metrics), args.min_ndcg_gain, args.max_sts_drop)
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'}  {c.name:<18}{c.detail}")
    passed = all(c.passed for c in checks)
    print("quality gate:", "passed" if passed else "failed")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
