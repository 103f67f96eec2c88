"""notebooks/01_finetune_bge_m3_kr.ipynb runs top to bottom in DRY_RUN mode, with every network route
closed (a dead proxy, Hub offline): any call that tried to leave the machine would fail a cell."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_finetune_bge_m3_kr.ipynb"


def test_parameters_cell_is_tagged_and_defaults_to_dry_run():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "DRY_RUN = True" in tagged[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook clean"


@pytest.mark.standin
def test_notebook_runs_in_dry_run_mode_offline(standin_dir, monkeypatch):
    from nbclient import NotebookClient

    dead = "http://127.0.0.1:9"  # nothing listens on the discard port: every proxied request fails
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy", "AZURE_SUBSCRIPTION_ID", "AZUREML_COMPUTE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "DRY_RUN: True" in text
    assert "AZURE_SUBSCRIPTION_ID    placeholder" in text
    assert "name: kr-elec-triplets" in text and "type: pipeline" in text  # entities shown as YAML
    assert "default_compute: azureml:gpu-cluster" in text
    assert "deploy into 'blue'; live slot now: None" in text
    assert "smoke test passed" in text and "질의: PWM이 뭐야?" in text
