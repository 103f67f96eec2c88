"""The MLOps GitHub Actions workflow: both offline linters pass (and catch a broken copy), login is OIDC
with ids from repository settings only, and the jobs run test -> train -> gate/register -> deploy."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "mlops.yml"
LOGIN = ROOT / ".github" / "scripts" / "az-login-oidc.sh"
BIN = Path(sys.executable).parent  # the linters and shellcheck are installed beside the interpreter
LINTERS = {
    "jactionlint": [str(BIN / "jactionlint"), "--no-color", "--profile", "correctness"],
    "actionlint": [str(BIN / "actionlint"), "-no-color"],
}
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)


def lint(linter: str, path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}  # shellcheck from the environment checks every run: script
    return subprocess.run([*LINTERS[linter], str(path)], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("linter", sorted(LINTERS))
def test_workflow_lints_clean(linter):
    done = lint(linter, WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shellcheck was not found" not in done.stderr


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("client-id:", "client-idd:", "client-idd"),  # an input azure/login does not have
        ("needs: train", "needs: trian", "trian"),  # a job that does not exist
        ("${{ needs.train.outputs.job_name }}", "${{ needs.train.outputs.jobname }}", "jobname"),
        ("actions/checkout@v5", "actions/checkout@v3", 'checkout@v3"'),  # a retired runtime
        ('az ml job cancel --name "$JOB_NAME"', "az ml job cancel --name $JOB_NAME", "SC2086"),  # shellcheck
    ],
)
@pytest.mark.parametrize("linter", sorted(LINTERS))
def test_linters_catch_a_broken_workflow(tmp_path, linter, old, new, expected):
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / "mlops.yml"
    broken.write_text(text.replace(old, new, 1))
    done = lint(linter, broken)
    assert done.returncode != 0 and expected in done.stdout + done.stderr


def test_triggers_login_and_job_order():
    spec = yaml.safe_load(WORKFLOW.read_text())
    triggers = spec[True]  # YAML 1.1 reads the key `on` as a boolean
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    jobs = spec["jobs"]
    order, job = [], "retire-old-slot"
    while job:
        order.insert(0, job)
        needs = jobs[job].get("needs") or []
        job = needs if isinstance(needs, str) else (needs[-1] if needs else None)
    assert order == ["test", "train", "wait", "gate-and-register", "deploy", "retire-old-slot"]
    assert spec["permissions"] == {"contents": "read"}  # id-token only where Azure is used
    for name in ("train", "wait", "gate-and-register", "deploy", "retire-old-slot"):
        assert jobs[name]["permissions"]["id-token"] == "write"
    for name in ("train", "gate-and-register", "deploy", "retire-old-slot"):
        login = next(s for s in jobs[name]["steps"] if s.get("uses", "").startswith("azure/login@"))
        assert login["with"] == {
            "client-id": "${{ secrets.AZURE_CLIENT_ID }}",
            "tenant-id": "${{ secrets.AZURE_TENANT_ID }}",
            "subscription-id": "${{ secrets.AZURE_SUBSCRIPTION_ID }}",
        }


def test_no_login_is_held_across_the_training_wait():
    """Submit and wait are separate jobs; the wait logs in afresh before every poll (a federated login
    expires after about an hour), cancels the Azure ML job when it is cancelled or fails, and every job
    has a limit a GitHub-hosted runner honours (6 h at most)."""
    spec = yaml.safe_load(WORKFLOW.read_text())
    jobs = spec["jobs"]
    text = WORKFLOW.read_text()
    assert "az ml job stream" not in text and "--stream" not in text
    assert "az ml job create" in str(jobs["train"]["steps"]) and "sleep" not in str(jobs["train"]["steps"])
    wait = jobs["wait"]
    assert not any(s.get("uses", "").startswith("azure/login@") for s in wait["steps"])
    poll = next(s["run"] for s in wait["steps"] if "while true" in s.get("run", ""))
    loop = poll[poll.index("while true") :]
    assert loop.index("az-login-oidc.sh") < loop.index("az ml job show") < loop.index("sleep")
    cancel = next(s for s in wait["steps"] if "az ml job cancel" in s.get("run", ""))
    assert cancel["if"] == "cancelled() || failure()" and "az-login-oidc.sh" in cancel["run"]
    assert all(0 < job["timeout-minutes"] <= 360 for name, job in jobs.items()), "a job without a real limit"
    assert "README" not in str(spec[True]["push"]["paths"]) and "src/**" in spec[True]["push"]["paths"]


def test_login_script_passes_shellcheck():
    done = subprocess.run([str(BIN / "shellcheck"), str(LOGIN)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_steps_call_the_repository_modules_and_files():
    """Every `python -m src.X` the workflow runs exists, the gate and smoke test run before the traffic
    shift, and every file it passes (--file, --request-file) is in the repository."""
    text = WORKFLOW.read_text()
    for module in set(re.findall(r"python -m (src\.\w+)", text)):
        assert importlib.util.find_spec(module) is not None, module
    for path in re.findall(r"--(?:request-)?file \"?([\w./$-]+)", text):
        path = path.replace("$request", "query")
        assert (ROOT / path).is_file(), path
    assert text.index("src.gate") < text.index("az ml model create")
    assert text.index("src.aml smoke") < text.index('--traffic "$idle=100')
    assert "bash .ci/run" in text


def test_no_ids_in_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():
        path = ROOT / name
        if path.suffix in {".yml", ".yaml", ".ipynb", ".md", ".py", ".json", ".toml"} and path.is_file():
            assert not UUID.search(path.read_text(encoding="utf-8", errors="replace")), name
