"""The Azure ML environments built for real: a virtual environment made with uv from exactly the pip list
of each conda file, and what Azure ML runs in it run here.

- azureml/train-env: the train and evaluate components' commands, as Azure ML renders them, on a tiny
  BGE-M3-shaped model (its sparse/ColBERT heads make src.evaluate load FlagEmbedding) with MLflow
  logging on (Azure ML sets MLFLOW_TRACKING_URI), then the quality gate on the report.
- azureml/score-env: src/score.py behind the real inference server, answering a request.
- Dropping a package the components import from the environment fails the check.

Slow-ish (a few minutes; the first build on a machine downloads torch and its CUDA libraries, ~3 GB)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src import aml, gate
from tests.test_score import call, serving

pytestmark = pytest.mark.slow  # every test here trains, serves or builds an environment

ROOT = Path(__file__).resolve().parents[1]
AZUREML = ROOT / "azureml"
UV = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
EXCLUDE_NEWER = re.search(r'^exclude-newer = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def conda_spec(env: str) -> tuple[str, list[str]]:
    """(python version, pip requirements) of azureml/<env>/conda.yml."""
    conda = yaml.safe_load((AZUREML / env / "conda.yml").read_text())
    python = next(
        d.split("=", 1)[1] for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python=")
    )
    pins = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    return python, pins


def build_env(env: str, dest: Path, drop: str | None = None) -> Path:
    """A virtual environment at ``dest`` with the conda file's Python and exactly its pip list (less
    ``drop``), resolved as of the project's exclude-newer date; returns its bin folder."""
    python, pins = conda_spec(env)
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python:
        pytest.skip(
            f"azureml/{env}/conda.yml wants Python {python}; this interpreter is {sys.version.split()[0]}"
        )
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(dest)], check=True)
    install(dest / "bin", [p for p in pins if p.split("==")[0] != drop], f"azureml/{env}/conda.yml")
    return dest / "bin"


def install(bin_dir: Path, pins: list[str], source: str) -> None:
    requirements = bin_dir.parent / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    done = subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(bin_dir / "python"), "--exclude-newer", EXCLUDE_NEWER,
         "--no-compile-bytecode", "-r", str(requirements)], capture_output=True, text=True,  # compiled on import
    )  # fmt: skip
    assert done.returncode == 0, f"{source} does not install: {done.stderr[-3000:]}"


def isolated_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``bin_dir`` first on PATH and nothing of the test venv left."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    paths = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != Path(sys.executable).parent]
    return {
        **env,
        "PATH": os.pathsep.join([str(bin_dir), *paths]),
        "VIRTUAL_ENV": str(bin_dir.parent),
        **extra,
    }


def render(component_file: Path, values: dict[str, str]) -> str:
    """The component's command with ${{inputs.x}} / ${{outputs.y}} replaced: values, else defaults."""
    spec = yaml.safe_load(component_file.read_text())
    defaults = {f"inputs.{k}": str(v["default"]) for k, v in spec["inputs"].items() if "default" in v}
    return aml.BINDING.sub(lambda m: {**defaults, **values}[m.group(1)], spec["command"])


def code_folder(tmp: Path) -> Path:
    """The components' code folder as Azure ML lays it out (the repository root is `code: ../..`)."""
    work = tmp / "code"
    work.mkdir()
    for name in ("src", "data"):
        (work / name).symlink_to(ROOT / name)
    return work


@pytest.fixture(scope="module")
def job_run(tiny_m3_dir, tmp_path_factory) -> dict:
    """Both components' commands, exactly as Azure ML renders them, in the training environment. It is
    built first without FlagEmbedding, to show that the check catches a missing package (evaluate must
    fail on an M3 model), then completed with the conda file's FlagEmbedding pin and run for real (train,
    whose ONNX export checks the M3 heads against FlagEmbedding, then evaluate)."""
    tmp = tmp_path_factory.mktemp("job")
    bin_dir = build_env("train-env", tmp / "train-env", drop="FlagEmbedding")
    work = code_folder(tmp)
    data, model = tmp / "triplets", tmp / "mnt-model"
    model.mkdir()  # Azure ML creates the output mount points before the command starts
    subprocess.run([sys.executable, "-m", "src.synth_data", "--output-dir", str(data)], cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    env = isolated_env(bin_dir, RANK="0", CUDA_VISIBLE_DEVICES="", MLFLOW_TRACKING_URI=(tmp / "mlruns").as_uri(),
                       MLFLOW_ALLOW_FILE_STORE="true")  # Azure ML sets MLFLOW_TRACKING_URI  # fmt: skip

    def run(component: str, values: dict[str, str]) -> subprocess.CompletedProcess:
        command = render(AZUREML / "components" / f"{component}.yml", values)
        return subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True)

    def evaluate(report: Path, model: Path) -> subprocess.CompletedProcess:
        report.mkdir()
        return run("evaluate", {"inputs.model": str(model), "inputs.data": str(data), "inputs.sample_size": "40",
                                "outputs.report": str(report)})  # fmt: skip

    without = evaluate(tmp / "report-without-flagembedding", tiny_m3_dir)
    install(
        bin_dir, [p for p in conda_spec("train-env")[1] if p.startswith("FlagEmbedding==")], "FlagEmbedding"
    )
    trained = run("train", {"inputs.data": str(data), "inputs.model_name": str(tiny_m3_dir), "inputs.epochs": "0.02",
                            "inputs.batch_size": "8", "inputs.max_seq_length": "32", "inputs.device": "cpu",
                            "outputs.model": str(model)})  # fmt: skip
    assert trained.returncode == 0, f"train failed in azureml/train-env:\n{trained.stderr[-3000:]}"
    evaluated = evaluate(tmp / "mnt-report", model)
    assert evaluated.returncode == 0, f"evaluate failed in azureml/train-env:\n{evaluated.stderr[-3000:]}"
    return {"bin": bin_dir, "model": model, "report": tmp / "mnt-report", "work": work, "mlruns": tmp / "mlruns",
            "without": without, "report_without": tmp / "report-without-flagembedding"}  # fmt: skip


def test_components_run_in_the_training_environment(job_run):
    model, report = job_run["model"], job_run["report"]
    assert (model / "modules.json").is_file() and (model / "sparse_linear.pt").is_file()  # an M3 model
    metrics = gate.load_metrics(report / "metrics.json")
    assert any("M3 modes evaluated" in note for note in metrics["m3"].values())  # FlagEmbedding ran
    assert len(gate.evaluate_gate(metrics, 0.02, 2.0)) == 3
    assert any(job_run["mlruns"].rglob("meta.yaml")), "the MLflow callback logged nothing"
    assert not (job_run["work"] / "outputs").exists()  # nothing for Azure ML to upload twice


def test_a_package_missing_from_the_environment_fails_the_check(job_run):
    """Without FlagEmbedding the evaluate command stops at once with a one-line error, writing nothing."""
    without = job_run["without"]
    assert without.returncode == 2
    assert "needs the FlagEmbedding package" in without.stderr.strip().splitlines()[-1]
    assert not any(job_run["report_without"].iterdir())


def test_environment_has_the_cuda_12_torch(job_run):
    """The environment holds the conda file's torch, the build for CUDA 12 (not the local tests' torch)."""
    _, pins = conda_spec("train-env")
    done = subprocess.run([str(job_run["bin"] / "python"), "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    torch_version, cuda = done.stdout.split()
    assert f"torch=={torch_version.split('+')[0]}" in pins and cuda.startswith("12.")


def test_the_training_job_exports_the_onnx_variants(job_run):
    """The train component runs src.export in the training environment: the registered model carries the
    int8 file the lean scoring environment serves, and the heads as numpy weights."""
    onnx_dir = job_run["model"] / "onnx"
    assert {"model.onnx", "model_qint8_avx2.onnx", "encoder.json", "tokenizer.json", "m3_heads.npz"} <= {
        p.name for p in onnx_dir.iterdir()
    }


def test_scoring_script_serves_from_the_lean_scoring_environment(job_run, tmp_path):
    """The trained M3 model, as the job registers it, served from azureml/score-env with the deployment's
    variables: no torch there, and all three M3 outputs answered from the ONNX file SCORE_BACKEND names."""
    bin_dir = build_env("score-env", tmp_path / "score-env")
    assert (
        subprocess.run([str(bin_dir / "python"), "-c", "import torch"], capture_output=True).returncode != 0
    )
    version_dir = tmp_path / "azureml-models" / "bge-m3-kr" / "3"
    shutil.copytree(job_run["model"], version_dir / "model")
    spec = yaml.safe_load((AZUREML / "deployment.yml").read_text())
    env = isolated_env(bin_dir, **spec["environment_variables"])
    body = {"texts": ["PWM이 뭐야?"], "return_sparse": True, "return_colbert": True}
    with serving(bin_dir / "azmlinfsrv", version_dir, env, tmp_path / "server.log") as url:
        status, response = call(f"{url}/score", json.dumps(body).encode())
    assert status == 200, response
    assert len(response["embeddings"]) == 1 and response["model"] == "bge-m3-kr:3"
    # a briefly trained tiny head may weight no token above zero: the sparse map is there, maybe empty
    assert (
        len(response["sparse"]) == 1
        and isinstance(response["sparse"][0], dict)
        and len(response["colbert"][0]) > 1
    )
    assert (
        f"backend {spec['environment_variables']['SCORE_BACKEND']})" in (tmp_path / "server.log").read_text()
    )
