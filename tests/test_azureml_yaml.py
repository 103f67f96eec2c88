"""azureml/ endpoint, deployment and compute YAMLs: they load and validate offline with azure-ai-ml and point
at files that exist (tests/test_aml.py checks the environments' pins, tests/test_azureml_env.py builds them)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AZUREML = ROOT / "azureml"


def test_endpoint_and_deployment_load_offline():
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    endpoint = load_online_endpoint(AZUREML / "endpoint.yml")
    deployment = load_online_deployment(AZUREML / "deployment.yml")
    assert endpoint.name == deployment.endpoint_name == "kr-elec-embed"
    assert endpoint.auth_mode == "key"
    assert deployment.request_settings.request_timeout_ms >= 1000
    assert deployment.liveness_probe.initial_delay >= 30 and deployment.readiness_probe.failure_threshold >= 3
    assert deployment.environment_variables["SCORE_MAX_TEXTS"] == "64"
    settings = deployment.request_settings
    assert settings.max_queue_wait_ms is None  # deprecated for managed online endpoints
    assert 1000 <= settings.request_timeout_ms <= 180_000  # the managed endpoint's limit
    assert settings.max_concurrent_requests_per_instance >= 1
    assert deployment.instance_type == "Standard_F8s_v2"  # 4 physical cores: README arithmetic
    assert "cuda" not in deployment.environment.image  # the lean ONNX environment runs on CPU
    variables = deployment.environment_variables
    assert variables["SCORE_BACKEND"] in ("onnx", "onnx-int8") and variables["WORKER_COUNT"] == "1"


def test_compute_scales_to_zero():
    from azure.ai.ml import load_compute

    compute = load_compute(AZUREML / "compute.yml")
    assert compute.type == "amlcompute" and compute.name == "gpu-cluster"  # job.yml's default compute
    assert compute.min_instances == 0 and compute.max_instances >= 1
    assert 0 < compute.idle_time_before_scale_down <= 1800 and compute.tier in ("dedicated", "low_priority")


def test_scoring_script_and_conda_file_exist():
    spec = yaml.safe_load((AZUREML / "deployment.yml").read_text())
    code = (AZUREML / spec["code_configuration"]["code"]).resolve()
    assert (code / spec["code_configuration"]["scoring_script"]).is_file()
    assert (AZUREML / spec["environment"]["conda_file"]).is_file()
