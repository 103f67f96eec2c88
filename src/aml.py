"""Azure ML helpers shared by the notebook and the MLOps workflow, all offline up to the network boundary.

    uv run python -m src.aml validate                         # load azureml/*.yml, check every ${{...}}
    uv run python -m src.aml data-version outputs/data        # content-hash version for the data asset
    uv run python -m src.aml rollout --traffic '{"blue": 100}' # idle slot to deploy into, live slot
    uv run python -m src.aml smoke --query q.json --passages p.json  # check endpoint responses

``validate`` loads the training job with ``azure.ai.ml.load_job`` (unknown keys, wrong types, missing
code or conda paths raise), validates each component's command, and checks the pipeline's data bindings
(``${{parent.inputs.x}}``, ``${{parent.jobs.n.outputs.y}}``, ``${{inputs.x}}``) against what is declared,
which ``load_job`` itself does not do. Exit codes: 0 valid / passed; 1 ``validate`` found problems (each
printed) or ``smoke`` found wrong answers; 2 bad input (a missing or malformed file, bad JSON in --traffic).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import yaml

from src import cli
from src.cli import UsageError
from src.data import DataError, file_digest

AZUREML = Path(__file__).resolve().parents[1] / "azureml"
JOB_FILE = AZUREML / "job.yml"
SLOTS = ("blue", "green")
BINDING = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def component_bindings(component: dict, source: str) -> list[str]:
    """Problems with a component's command: ``${{inputs.x}}``/``${{outputs.y}}`` it does not declare."""
    errors = []
    for ref in BINDING.findall(component.get("command", "")):
        kind, _, key = ref.partition(".")
        if kind not in ("inputs", "outputs") or key not in (component.get(kind) or {}):
            errors.append(f"{source}: command uses ${{{{{ref}}}}}, which the component does not declare")
    return errors


def pipeline_bindings(job_file: Path) -> list[str]:
    """Problems with a pipeline job's bindings: every node input/output and every ``${{parent...}}``
    reference must name something declared (pipeline inputs/outputs, node components' inputs/outputs),
    and every required component input must be bound."""
    spec = yaml.safe_load(job_file.read_text(encoding="utf-8"))
    errors: list[str] = []
    components = {}
    for name, node in (spec.get("jobs") or {}).items():
        path = job_file.parent / node["component"]
        components[name] = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors += component_bindings(components[name], str(path.relative_to(job_file.parent)))
    declared = {"inputs": set(spec.get("inputs") or {}), "outputs": set(spec.get("outputs") or {})}
    for name, node in (spec.get("jobs") or {}).items():
        component = components[name]
        for kind in ("inputs", "outputs"):
            for key, value in (node.get(kind) or {}).items():
                if key not in (component.get(kind) or {}):
                    errors.append(f"jobs.{name}.{kind}.{key}: the component has no such {kind[:-1]}")
                for ref in BINDING.findall(str(value)):
                    errors += _parent_ref(ref, f"jobs.{name}.{kind}.{key}", declared, components)
        required = {k for k, v in (component.get("inputs") or {}).items()
                    if "default" not in v and not v.get("optional")}  # fmt: skip
        for key in sorted(required - set(node.get("inputs") or {})):
            errors.append(f"jobs.{name}: required input {key!r} is not bound")
    return errors


def _parent_ref(ref: str, where: str, declared: dict[str, set], components: dict[str, dict]) -> list[str]:
    parts = ref.split(".")
    if parts[:1] != ["parent"]:
        return [f"{where}: ${{{{{ref}}}}} must refer to parent.inputs, parent.outputs or parent.jobs"]
    if len(parts) == 3 and parts[1] in declared:
        ok = parts[2] in declared[parts[1]]
    elif len(parts) == 5 and parts[1] == "jobs" and parts[3] in ("inputs", "outputs"):
        ok = parts[2] in components and parts[4] in (components[parts[2]].get(parts[3]) or {})
    else:
        ok = False
    return [] if ok else [f"{where}: ${{{{{ref}}}}} refers to nothing declared"]


def validate(job_file: Path = JOB_FILE) -> list[str]:
    """Every problem azure-ai-ml and the binding check find in the job; empty when it is valid."""
    from azure.ai.ml import load_component, load_job

    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)  # schema notices
    try:
        nodes = yaml.safe_load(job_file.read_text(encoding="utf-8"))["jobs"]
    except (OSError, yaml.YAMLError, TypeError, KeyError) as e:
        return [f"{job_file}: not a pipeline job YAML ({type(e).__name__}: {e})"]
    errors = []
    for name, node in nodes.items():
        # loaded on its own, a component gets checks a pipeline skips (its name's pattern); and a bad
        # component can make load_job fail while formatting its own error message
        path = job_file.parent / str(node.get("component"))
        try:
            component = load_component(path)
        except Exception as e:  # noqa: BLE001 - azure-ai-ml raises several unrelated types
            errors.append(f"jobs.{name}.component ({path.name}): {_brief(e)}")
            continue
        errors += [
            f"jobs.{name}.component: {k}: {v}" for k, v in component._validate().error_messages.items()
        ]
    if errors:
        return errors + pipeline_bindings(job_file)
    try:
        job = load_job(job_file)
    except Exception as e:  # noqa: BLE001
        return [f"{job_file.name}: {_brief(e)}"]
    errors = [f"{job_file.name}: {k}: {v}" for k, v in job._validate().error_messages.items()]
    return errors + pipeline_bindings(job_file)


def _brief(error: Exception) -> str:
    """The messages inside an azure-ai-ml validation error (its text wraps them in JSON and advice)."""
    text = str(error)
    messages = re.findall(r'"message": "((?:[^"\\]|\\.)*)"', text)
    return "; ".join(m.split("\\n")[0] for m in messages) if messages else text.splitlines()[0]


def data_version(folder: Path) -> str:
    """Version of the data asset: the first 12 hex digits of the folder's content hash, so the same
    triplets always map to the same version and a re-run registers nothing new."""
    return file_digest(folder)[:12]


def rollout(traffic: dict[str, int]) -> tuple[str, str | None]:
    """(slot to deploy into, slot serving now) of a blue/green endpoint; ``traffic`` maps deployment
    names to percentages ({} for a new endpoint)."""
    if not isinstance(traffic, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in traffic.values()
    ):
        raise UsageError(
            f"--traffic: expected a JSON object of deployment -> percentage, got {traffic!r:.60}"
        )
    live = max(traffic, key=traffic.get) if traffic and max(traffic.values()) > 0 else None
    if live is not None and live not in SLOTS:
        raise UsageError(f"endpoint serves from {live!r}; expected one of {', '.join(SLOTS)}")
    return next(s for s in SLOTS if s != live), live


def smoke_check(query: dict, passages: dict) -> str:
    """Check a deployment's answers to the smoke requests (azureml/smoke/): one query embedding, passage
    embeddings of the same dimension, and the first passage (the query's answer) ranked first.
    Returns a one-line summary; raises ValueError on failure."""
    q = np.asarray(query.get("embeddings"), dtype=float)
    p = np.asarray(passages.get("embeddings"), dtype=float)
    if q.ndim != 2 or q.shape[0] != 1 or p.ndim != 2 or p.shape[0] < 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"unexpected embedding shapes: query {q.shape}, passages {p.shape}")
    if not np.allclose(np.linalg.norm(np.vstack([q, p]), axis=1), 1, atol=1e-3):
        raise ValueError("embeddings are not unit length")
    sims = (p @ q[0]).round(4).tolist()
    if int(np.argmax(sims)) != 0:
        raise ValueError(f"the answer passage is not ranked first: similarities {sims}")
    return f"smoke test passed: similarities {sims} (answer first)"


def load_response(path: Path) -> dict:
    """An endpoint response saved from ``az ml online-endpoint invoke``: a JSON object, or a JSON string
    holding one (the CLI prints some responses that way). Raises DataError naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(value, str):
            value = json.loads(value)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise DataError(path, f"not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise DataError(path, f"expected a JSON object, got {type(value).__name__}")
    return value


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=cli.ArgumentParser)
    v = sub.add_parser("validate", description="load and validate the training job offline")
    v.add_argument("--job", type=cli.input_file, default=str(JOB_FILE))
    d = sub.add_parser("data-version", description="content-hash version of a data folder")
    d.add_argument("folder", type=cli.input_dir)
    r = sub.add_parser("rollout", description="blue/green: the idle slot and the live slot")
    r.add_argument("--traffic", default="{}", help="the endpoint's traffic as JSON")
    s = sub.add_parser("smoke", description="check the endpoint's answers to azureml/smoke/ requests")
    s.add_argument("--query", type=cli.input_file, required=True, help="response to azureml/smoke/query.json")
    s.add_argument(
        "--passages", type=cli.input_file, required=True, help="response to azureml/smoke/passages.json"
    )
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        errors = validate(args.job)
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"{args.job}: {'invalid' if errors else 'valid'}")
        return 1 if errors else 0
    if args.command == "data-version":
        print(data_version(args.folder))
    elif args.command == "rollout":
        try:
            traffic = json.loads(args.traffic or "{}")
        except ValueError as e:
            raise UsageError(f"--traffic: not valid JSON ({e})") from None
        idle, live = rollout(traffic)
        print(f"idle={idle}\nlive={live or ''}")
    else:
        query, passages = load_response(args.query), load_response(args.passages)
        try:
            print(smoke_check(query, passages))
        except ValueError as e:
            print(f"smoke test failed: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
