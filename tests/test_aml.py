"""The Azure ML training job (azureml/job.yml + components) and src.aml: offline validation, the binding
check catching what load_job misses, the scoring environment's pins, blue/green slot choice and the endpoint
smoke check (tests/test_azureml_env.py runs the components' commands in their environments)."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from src import aml

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_validate_cli_exit_codes(azureml_copy, capsys):
    assert aml.main(["validate", "--job", str(azureml_copy / "job.yml")]) == 0
    edit(azureml_copy / "components" / "train.yml", "${{inputs.epochs}}", "${{inputs.epoch}}")
    assert aml.main(["validate", "--job", str(azureml_copy / "job.yml")]) == 1
    assert "inputs.epoch}}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "env, needed",
    [
        (
            "train-env",
            {"torch", "sentence-transformers", "FlagEmbedding", "azureml-mlflow", "bm25s", "kiwipiepy"},
        ),
        ("score-env", {"azureml-inference-server-http", "onnxruntime", "tokenizers", "numpy"}),
    ],
)
def test_environment_pins_match_the_tested_versions(env, needed):
    """Each pin is the version the local tests run, except torch: the training environment takes its CUDA 12
    build (tests/test_azureml_env.py builds both environments and runs their commands in them). The scoring
    environment is the lean one: no torch at all."""
    conda = yaml.safe_load((AZUREML / env / "conda.yml").read_text())
    pins = dict(
        p.split("==")[:2] for p in next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    )
    assert pins.pop("torch", None) == ("2.10.0" if env == "train-env" else None)
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name}: conda pins {pinned}, tests run {version(name)}"
    assert needed <= {*pins, "torch"}
    if env == "score-env":
        assert not {"torch", "sentence-transformers", "transformers", "FlagEmbedding"} & set(pins)


def test_pinned_mlflow_satisfies_the_cap_of_azureml_mlflow():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    cap = next(Requirement(r) for r in requires("azureml-mlflow") if r.startswith("mlflow-skinny"))
    assert version("mlflow-skinny") in cap.specifier


def test_data_version_follows_content_not_location(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"a": 1}\n')
    first = aml.data_version(folder)
    shutil.copytree(folder, tmp_path / "elsewhere")
    assert aml.data_version(tmp_path / "elsewhere") == first  # the same triplets: the same version
    (tmp_path / "elsewhere" / "train.jsonl").rename(tmp_path / "elsewhere" / "test.jsonl")
    assert aml.data_version(tmp_path / "elsewhere") != first  # a file's name is part of the content
    (folder / "train.jsonl").write_text('{"a": 2}\n')
    assert aml.data_version(folder) != first


@pytest.mark.parametrize(
    "traffic, expected",
    [({}, ("blue", None)), ({"blue": 100}, ("green", "blue")), ({"blue": 0, "green": 100}, ("blue", "green")),
     ({"blue": 10, "green": 90}, ("blue", "green")), ({"blue": 0, "green": 0}, ("blue", None))],
)  # fmt: skip
def test_rollout_deploys_into_the_idle_slot(traffic, expected):
    assert aml.rollout(traffic) == expected


def test_rollout_refuses_an_unknown_live_slot(capsys):
    assert aml.main(["rollout", "--traffic", '{"red": 100}']) == 2
    assert "red" in capsys.readouterr().err
    assert aml.main(["rollout", "--traffic", "{not json"]) == 2
    assert capsys.readouterr().err.startswith("error: --traffic: not valid JSON")


@pytest.fixture(scope="module")
def smoke_responses(scoring, standin_dir):
    """The stand-in's real answers, through src/score.py, to the smoke requests in azureml/smoke/."""
    with scoring(standin_dir) as score:
        return [score.run((AZUREML / "smoke" / f).read_text()) for f in ("query.json", "passages.json")]


@pytest.mark.slow
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
        aml.main(["smoke", "--query", str(tmp_path / "q.json"), "--passages", str(tmp_path / "p.json")]) == 2
    )


@pytest.mark.slow
@pytest.mark.standin
@pytest.mark.parametrize("form", ["object", "string"])
def test_smoke_cli_reads_the_response_as_an_object_or_a_json_string(smoke_responses, tmp_path, form, capsys):
    """`az ml online-endpoint invoke` prints a response as a JSON object or as a JSON string holding it."""
    for name, response in zip(("q.json", "p.json"), smoke_responses, strict=True):
        text = json.dumps(response)
        (tmp_path / name).write_text(text if form == "object" else json.dumps(text))
    assert (
        aml.main(["smoke", "--query", str(tmp_path / "q.json"), "--passages", str(tmp_path / "p.json")]) == 0
    )
    assert "answer first" in capsys.readouterr().out
    (tmp_path / "q.json").write_text("[1, 2]")
    assert (
        aml.main(["smoke", "--query", str(tmp_path / "q.json"), "--passages", str(tmp_path / "p.json")]) == 2
    )
    assert "expected a JSON object, got list" in capsys.readouterr().err
