"""notebooks/01_finetune_bge_m3_kr.ipynb runs top to bottom in DRY_RUN mode, with every network route
closed (a dead proxy, Hub offline): any call that tried to leave the machine would fail a cell."""

from __future__ import annotations

import ast
import os
import sys
from importlib.metadata import version
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


def requirements() -> dict[str, str]:
    lines = (ROOT / "notebooks" / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line.strip() and not line.startswith("#"))


def imported_distributions() -> set[str]:
    """Distributions the notebook's code cells import, directly and through the src modules they use
    (followed transitively, imports inside functions included)."""
    from importlib.metadata import packages_distributions

    nb = nbformat.read(NOTEBOOK, as_version=4)
    sources = ["\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith("%"))
               for c in nb.cells if c.cell_type == "code"]  # fmt: skip
    modules, seen = set(), set()
    while sources:
        for node in ast.walk(ast.parse(sources.pop())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module] + [
                    f"{node.module}.{a.name}" for a in node.names if node.module == "src"
                ]
            for name in names:
                if (
                    name.startswith("src.")
                    and name not in seen
                    and (ROOT / f"{name.replace('.', '/')}.py").exists()
                ):
                    seen.add(name)
                    sources.append((ROOT / f"{name.replace('.', '/')}.py").read_text())
                elif (
                    name != "src"
                    and not name.startswith("src.")
                    and name.split(".")[0] not in sys.stdlib_module_names
                ):
                    modules.add(name)
    owners = packages_distributions()
    # the azure namespace is shared: azure.ai.ml is azure-ai-ml, azure.identity is azure-identity
    return {"-".join(m.split(".")[:3 if m.startswith("azure.ai.") else 2]) if m.startswith("azure.")
            else owners[m.split(".")[0]][0] for m in modules if m.split(".")[0] != "__future__"}  # fmt: skip


def test_first_code_cell_installs_exactly_what_the_notebook_imports():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "%pip install" in first.source and "requirements.txt" in first.source
    assert nb.metadata.kernelspec.name == "python310-sdkv2"  # Azure ML compute instances' Python 3.10 kernel
    pins = requirements()
    assert {name.lower() for name in pins} == {name.lower() for name in imported_distributions()}
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name}: requirements.txt pins {pinned}, CI runs {version(name)}"


@pytest.mark.slow
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
    assert f"all {len(requirements())} pinned packages present" in text  # the install cell installed nothing
