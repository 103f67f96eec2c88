"""src.pipeline: synth -> train -> evaluate in one command; a stage re-runs exactly when an input it reads
changed, wherever that input was passed; another domain runs from data files alone."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest

from src.data import load_glossary, to_json_line
from src.pipeline import main

pytestmark = pytest.mark.slow  # every test here trains, serves or builds an environment

ROOT = Path(__file__).resolve().parents[1]
MEDICAL = ROOT / "data" / "examples" / "medical_devices"
TRAIN_ARGS = "--max_steps 4 --batch_size 8 --eval_steps 2 --max_dev_queries 30 --freeze_layers 1"


def ran(err: str) -> set[str]:
    """The stages a pipeline run executed (not reused)."""
    return {s for s in ("synth_data", "train", "evaluate") if f"[{s}] python -m src.{s}" in err}


def test_each_stage_reruns_exactly_when_an_input_it_reads_changes(tiny_model_dir, tmp_path, capsys):
    glossary, sts = tmp_path / "glossary.jsonl", tmp_path / "sts.tsv"
    concepts = load_glossary(ROOT / "data" / "glossary_ko.jsonl")[:60]
    kept = [
        to_json_line(dataclasses.replace(c, confusables=[])) for c in concepts
    ]  # no links outside the subset
    glossary.write_text("".join(kept), encoding="utf-8")
    shutil.copy(ROOT / "data" / "sts_ko_sample.tsv", sts)
    base = shutil.copytree(tiny_model_dir, tmp_path / "base")
    argv = ["--base_model", str(base), "--output_dir", str(tmp_path / "p"), "--train_args", TRAIN_ARGS,
            "--synth_args", f"--glossary {shlex.quote(str(glossary))} --terms '' --acronyms '' --test_split 0.3",
            "--eval_args", f"--sts {shlex.quote(str(sts))} --eval_dir '' --sample_size 60 --bootstrap 200"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "ndcg@10" in captured.out and "Report:" in captured.out
    assert ran(captured.err) == {"synth_data", "train", "evaluate"}
    summary = json.loads((tmp_path / "p" / "model" / "training_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["arguments"]["device"] == "cpu"  # laptop profile
    model_mtime = (tmp_path / "p" / "model" / "model.safetensors").stat().st_mtime_ns

    assert main(argv) == 0
    assert ran(capsys.readouterr().err) == set()  # nothing changed: all three reused

    sts.write_text("\n".join(sts.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    assert main(argv) == 0  # a file passed through --eval_args changed: only the evaluation re-runs
    assert ran(capsys.readouterr().err) == {"evaluate"}
    assert (tmp_path / "p" / "model" / "model.safetensors").stat().st_mtime_ns == model_mtime

    argv[-1] = argv[-1].replace("--sample_size 60", "--sample_size 40")  # a flag of the evaluation
    assert main(argv) == 0
    assert ran(capsys.readouterr().err) == {"evaluate"}
    assert json.loads((tmp_path / "p" / "report" / "metrics.json").read_text())["data"]["queries"] == 40

    glossary.write_text("".join(kept[:-1]), encoding="utf-8")
    assert main(argv) == 0  # a file passed through --synth_args changed: everything downstream re-runs
    assert ran(capsys.readouterr().err) == {"synth_data", "train", "evaluate"}

    (base / "README.md").write_text("edited model card")  # the base model's files: train and evaluate
    assert main(argv) == 0
    assert ran(capsys.readouterr().err) == {"train", "evaluate"}


def test_a_failing_stage_stops_the_pipeline_and_leaves_no_key(tiny_model_dir, tmp_path, capsys):
    argv = [
        "--base_model",
        str(tiny_model_dir),
        "--output_dir",
        str(tmp_path / "p"),
        "--train_args",
        "--epochs 1",
    ]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "data").mkdir()
    (tmp_path / "p" / "data" / "train.jsonl").mkdir()  # synth cannot replace its output
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "train.jsonl: is a folder" in err and "[pipeline] the pipeline stopped at synth_data" in err
    assert not (tmp_path / "p" / "model").exists() and not list((tmp_path / "p").glob("*.pipeline_key"))


def test_a_second_domain_runs_end_to_end_from_data_files_alone(tiny_model_dir, tmp_path, capsys):
    """The medical-device example: its glossary and domain file, no code change."""
    synth = (f"--glossary {MEDICAL / 'glossary_ko.jsonl'} --templates {MEDICAL / 'templates_ko.yaml'} "
             "--terms '' --acronyms '' --test_split 0.2")  # fmt: skip
    argv = ["--base_model", str(tiny_model_dir), "--output_dir", str(tmp_path / "med"), "--synth_args", synth,
            "--train_args", TRAIN_ARGS, "--eval_args", "--eval_dir '' --bootstrap 200"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "30 의료기기 concepts" in out.err and "synthetic" in out.out
    rows = [json.loads(line) for line in (tmp_path / "med" / "data" / "train.jsonl").read_text().splitlines()]
    categories = {"imaging", "monitoring", "therapy", "diagnostics", "safety_regulation"}
    assert {r["category"] for r in rows} == categories | {"general"} and len(
        rows
    ) > 100  # + general Korean rows
    assert any("의료기기 용어" in r["query"] for r in rows)  # the domain file's own template wording
    assert not any("전기·전자" in r["query"] + r["positive"] for r in rows)
    metrics = json.loads((tmp_path / "med" / "report" / "metrics.json").read_text())
    assert metrics["data"]["test_concepts"] == 5 and "independent" not in metrics
