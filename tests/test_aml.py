"""The Azure ML training job (azureml/job.yml + components) and src.aml: offline validation, the binding
check catching what load_job misses, the components' commands run locally for real, the pinned training
environment, blue/green slot choice and the endpoint smoke check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from src import aml, gate

ROOT = Path(__file__).resolve().parents[1]
AZUREML = ROOT / "azureml"


@pytest.fixture
def azureml_copy(tmp_path) -> Path:
    """A copy of azureml/ whose files a test may break; code paths still resolve to the repo."""
    copy = tmp_path / "azureml"
    shutil.copytree(AZUREML, copy)
    for component in (copy / "components").glob("*.yml"):
        component.write_text(component.read_text().replace("code: ../..", f"code: {ROOT}"))
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_job_loads_and_validates_offline():
    from azure.ai.ml import load_job

    assert aml.validate() == []
    job = load_job(AZUREML / "job.yml")
    assert job.type == "pipeline" and job.experiment_name == "kr-elec-embed"
    assert job.settings.default_compute == "gpu-cluster"
    assert list(job.jobs) == ["train", "evaluate"]
    train = job.jobs["train"]
    assert train.distribution.type == "pytorch" and train.distribution.process_count_per_instance == 1
    assert train.resources.instance_count == 1
    assert set(job.outputs) == {"model", "report"}


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        ("components/train.yml", "--seed ${{inputs.seed}}", "--seed ${{inputs.sed}}", "inputs.sed"),
        ("components/evaluate.yml", "${{outputs.report}}", "${{outputs.reports}}", "outputs.reports"),
        ("job.yml", "${{parent.inputs.seed}}", "${{parent.inputs.sed}}", "parent.inputs.sed"),
        ("job.yml", "${{parent.jobs.train.outputs.model}}", "${{parent.jobs.trian.outputs.model}}", "trian"),
        ("job.yml", "      model_name: ${{parent.inputs.base_model}}\n", "", None),  # optional: default
        ("job.yml", "      data: ${{parent.inputs.triplets}}\n      model_name", "      model_name",
         "required input 'data'"),
        ("job.yml", "      seed: ${{parent.inputs.seed}}\n    outputs:\n      model",
         "      sede: 1\n    outputs:\n      model", "jobs.train.inputs.sede"),
        ("components/train.yml", "name: kr_elec_embed_train", "name: kr-elec-embed-train", "name"),
        ("components/train.yml", "conda_file: ../train-env/conda.yml", "conda_file: ../nope/conda.yml", "nope"),
        ("job.yml", "settings:", "setings:", "setings"),
        ("job.yml", "process_count_per_instance: 1", "process_count_per_instance: many", "process_count"),
    ],
)  # fmt: skip
def test_validate_reports_each_broken_job(azureml_copy, file, old, new, expected):
    edit(azureml_copy / file, old, new)
    errors = aml.validate(azureml_copy / "job.yml")
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_validate_cli_exit_codes(azureml_copy, capsys):
    assert aml.main(["validate", "--job", str(azureml_copy / "job.yml")]) == 0
    edit(azureml_copy / "components" / "train.yml", "${{inputs.epochs}}", "${{inputs.epoch}}")
    assert aml.main(["validate", "--job", str(azureml_copy / "job.yml")]) == 1
    assert "inputs.epoch}}" in capsys.readouterr().err


def render(component_file: Path, values: dict[str, str]) -> str:
    """The component's command with ${{inputs.x}} / ${{outputs.y}} replaced: values, else defaults."""
    spec = yaml.safe_load(component_file.read_text())
    defaults = {f"inputs.{k}": str(v["default"]) for k, v in spec["inputs"].items() if "default" in v}
    return aml.BINDING.sub(lambda m: {**defaults, **values}[m.group(1)], spec["command"])


def test_component_commands_run_locally_and_feed_the_gate(tmp_path, tiny_model_dir):
    """The train and evaluate commands exactly as Azure ML would run them (its working directory is the
    code folder; outputs are folders it mounts), on the tiny model; then the gate reads the report."""
    work = tmp_path / "code"
    work.mkdir()
    for name in ("src", "data"):
        (work / name).symlink_to(ROOT / name)
    data, model, report = tmp_path / "triplets", tmp_path / "mnt-model", tmp_path / "mnt-report"
    model.mkdir()
    report.mkdir()  # Azure ML creates the output mount points before the command starts
    subprocess.run([sys.executable, "-m", "src.synth_data", "--output-dir", str(data)], cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    env = {**os.environ, "RANK": "0", "CUDA_VISIBLE_DEVICES": ""}
    train = render(AZUREML / "components" / "train.yml", {
        "inputs.data": str(data), "inputs.model_name": str(tiny_model_dir), "inputs.epochs": "0.02",
        "inputs.batch_size": "8", "inputs.max_seq_length": "32", "outputs.model": str(model),
    })  # fmt: skip
    done = subprocess.run(["bash", "-c", train], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (model / "modules.json").is_file() and (model / "training_summary.json").is_file()

    evaluate = render(AZUREML / "components" / "evaluate.yml", {
        "inputs.model": str(model), "inputs.data": str(data), "inputs.sample_size": "40",
        "outputs.report": str(report),
    })  # fmt: skip
    done = subprocess.run(["bash", "-c", evaluate], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = gate.load_metrics(report / "metrics.json")
    assert str(tiny_model_dir) in metrics["roles"]["baseline"]  # the base model from the training summary
    assert len(gate.evaluate_gate(metrics, 0.02, 2.0)) == 3


@pytest.mark.parametrize(
    "env, needed",
    [
        (
            "train-env",
            {"torch", "sentence-transformers", "azureml-mlflow", "mlflow-skinny", "bm25s", "kiwipiepy"},
        ),
        ("score-env", {"azureml-inference-server-http", "sentence-transformers", "torch"}),
    ],
)
def test_environment_pins_match_the_tested_versions(env, needed):
    conda = yaml.safe_load((AZUREML / env / "conda.yml").read_text())
    pins = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    for pin in pins:
        name, pinned = pin.split("==")
        assert version(name) == pinned, f"{name}: conda pins {pinned}, tests run {version(name)}"
    assert needed <= {p.split("==")[0] for p in pins}


def test_pinned_mlflow_satisfies_the_cap_of_azureml_mlflow():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    cap = next(Requirement(r) for r in requires("azureml-mlflow") if r.startswith("mlflow-skinny"))
    assert version("mlflow-skinny") in cap.specifier


def test_data_version_follows_content(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"a": 1}\n')
    first = aml.data_version(tmp_path)
    assert len(first) == 12 and aml.data_version(tmp_path) == first
    (tmp_path / "train.jsonl").write_text('{"a": 2}\n')
    assert aml.data_version(tmp_path) != first


@pytest.mark.parametrize(
    "traffic, expected",
    [({}, ("blue", None)), ({"blue": 100}, ("green", "blue")), ({"blue": 0, "green": 100}, ("blue", "green")),
     ({"blue": 10, "green": 90}, ("blue", "green")), ({"blue": 0, "green": 0}, ("blue", None))],
)  # fmt: skip
def test_rollout_deploys_into_the_idle_slot(traffic, expected):
    assert aml.rollout(traffic) == expected


def test_rollout_refuses_an_unknown_live_slot(capsys):
    assert aml.main(["rollout", "--traffic", '{"red": 100}']) == 1
    assert "red" in capsys.readouterr().err
    assert aml.main(["rollout", "--traffic", "{not json"]) == 1


@pytest.fixture(scope="module")
def smoke_responses(standin_dir):
    """The stand-in's real answers, through src/score.py, to the smoke requests in azureml/smoke/."""
    from src import score

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AZUREML_MODEL_DIR", str(standin_dir))
        score.init()
        return [score.run((AZUREML / "smoke" / f).read_text()) for f in ("query.json", "passages.json")]


@pytest.mark.standin
def test_smoke_check_passes_on_a_real_model_and_catches_a_wrong_ranking(smoke_responses, tmp_path):
    query, passages = smoke_responses
    assert "answer first" in aml.smoke_check(query, passages)
    wrong = {**passages, "embeddings": passages["embeddings"][::-1]}
    with pytest.raises(ValueError, match="not ranked first"):
        aml.smoke_check(query, wrong)
    with pytest.raises(ValueError, match="shapes"):
        aml.smoke_check(query, {"embeddings": passages["embeddings"][:1]})
    with pytest.raises(ValueError, match="unit length"):
        aml.smoke_check(query, {"embeddings": [[2 * x for x in v] for v in passages["embeddings"]]})
    (tmp_path / "q.json").write_text(json.dumps(query))
    (tmp_path / "p.json").write_text("{broken")
    assert (
        aml.main(["smoke", "--query", str(tmp_path / "q.json"), "--passages", str(tmp_path / "p.json")]) == 1
    )
