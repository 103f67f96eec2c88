"""src/score.py behind the real Azure ML inference server (azmlinfsrv over a socket), plus a fuzz test of run()."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["PWM이 뭐야?", "벅 컨버터는 입력보다 낮은 전압을 만든다.", "decoupling capacitor"]


@pytest.fixture(scope="module")
def model_dir(tiny_onnx_dir, tmp_path_factory) -> Path:
    """The tiny model with its ONNX variants, laid out as Azure ML mounts a registered model:
    <root>/<name>/<version>/<folder>."""
    version_dir = tmp_path_factory.mktemp("mount") / "azureml-models" / "bge-m3-kr" / "1"
    shutil.copytree(tiny_onnx_dir, version_dir / "model")  # the job output's folder name
    return version_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    url: str, body: bytes | None = None, content_type: str = "application/json"
) -> tuple[int, dict | str]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type} if body is not None else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


@contextlib.contextmanager
def serving(azmlinfsrv: Path, model_dir: Path, env: dict[str, str], log_file: Path) -> Iterator[str]:
    """azmlinfsrv serving src/score.py over ``model_dir`` on a free local port, with its output in
    ``log_file``; yields the base URL once GET / answers 200 (within 120 s), and stops the server after."""
    port = free_port()
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            [str(azmlinfsrv), "--entry_script", str(ROOT / "src" / "score.py"), "--model_dir", str(model_dir),
             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                try:
                    if call(url + "/")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            else:
                pytest.fail("azmlinfsrv did not become ready: " + log_file.read_text()[-2000:])
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


# PyTorch; fp32 ONNX, what the deployment serves; and the default "auto", which picks the int8 file
@pytest.fixture(scope="module", params=["torch", "onnx", "auto"])
def server(model_dir, tmp_path_factory, request):
    env = {**os.environ, "SCORE_MAX_TEXTS": "8", "SCORE_MAX_CHARS": "200", "SCORE_MAX_BYTES": "4096",
           "SCORE_MAX_RESPONSE_BYTES": "4000", "SCORE_BACKEND": request.param}  # fmt: skip
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serving(Path(sys.executable).with_name("azmlinfsrv"), model_dir, env, log) as url:
        yield url, log, request.param


def same_embeddings(got: np.ndarray, expected: np.ndarray, backend: str) -> None:
    """PyTorch's and fp32 ONNX's embeddings to 1e-5; the int8 variant's to a cosine of at least 0.99 per text."""
    if backend in ("torch", "onnx"):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    else:
        assert (
            (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        ).min() > 0.99


@pytest.mark.slow
def test_embeddings_equal_sentence_transformers(server, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    url, log, requested = server
    served = re.search(r"backend (\S+)\)", log.read_text()).group(1)
    assert served == {"torch": "torch", "onnx": "onnx", "auto": "onnx-int8"}[requested]
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    for input_type, expected in [
        ("query", model.encode_query(TEXTS)),
        ("passage", model.encode_document(TEXTS)),
        (None, model.encode(TEXTS, prompt="")),
    ]:
        body = {"texts": TEXTS} | ({"input_type": input_type} if input_type else {})
        status, response = call(url + "/score", json.dumps(body).encode())
        assert status == 200, response
        assert (
            response["dim"] == 32
            and response["model"] == "bge-m3-kr:1"  # the registered model, not its folder "model"
            and response["input_type"] == input_type
        )
        same_embeddings(np.array(response["embeddings"]), expected, served)
    status, seed_form = call(url + "/score", json.dumps({"inputs": {"data": TEXTS[:1]}}).encode())
    assert status == 200 and len(seed_form["embeddings"]) == 1
    status, raw = call(url + "/score", json.dumps({"texts": TEXTS[:1], "normalize": False}).encode())
    assert status == 200  # the model's own output (this one ends in a Normalize module)
    same_embeddings(
        np.array(raw["embeddings"]), model.encode(TEXTS[:1], prompt="", normalize_embeddings=False), served
    )


@pytest.mark.slow
@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'{"text": ["a"]}', 400, 'missing "texts"'),
    (b'{"texts": []}', 400, "non-empty list"),
    (b'{"texts": ["a", 3]}', 400, '"texts"[1] must be a string'),
    (b'{"texts": ["a"], "input_type": "doc"}', 400, '"input_type" must be'),
    (b'{"texts": ["a"], "normalize": "yes"}', 400, '"normalize" must be'),
    (json.dumps({"texts": ["a"] * 9}).encode(), 413, "at most 8 per request"),
    (json.dumps({"texts": ["가" * 201]}).encode(), 413, "at most 200"),
    (json.dumps({"texts": ["a" * 150] * 8, "pad": "x" * 4000}).encode(), 413, "exceeds 4096 bytes"),
    # 8 texts x 32 floats is about 5 kB of JSON, over the test server's 4000-byte response limit
    (json.dumps({"texts": ["a"] * 8}).encode(), 413, "the response would be"),
    (b"\xff\xfe", 400, "UTF-8"),  # rejected by the server itself before run(), as {"message": ...}
    (b'{"texts": ["ok", "\\ud800"]}', 400, '"texts"[1] is not valid Unicode: a lone surrogate'),
])  # fmt: skip
def test_bad_requests_get_a_4xx_json_error_and_the_server_stays_up(server, body, status, message):
    url, *_ = server
    got_status, response = call(url + "/score", body)
    assert got_status == status and message in (response.get("error") or response["message"]), response
    assert call(url + "/")[0] == 200
    assert call(url + "/score", json.dumps({"texts": ["ok"]}).encode())[0] == 200


@pytest.mark.slow
def test_empty_body_and_form_post_are_400(server):
    url, *_ = server
    for body, content_type in [(b"", "application/json"), (b"a=1&b=2", "application/x-www-form-urlencoded")]:
        status, response = call(url + "/score", body, content_type)
        assert status == 400 and "empty request body" in response["error"], response


@pytest.mark.slow
def test_logs_never_contain_request_text(server):
    url, log, _ = server
    secret = "비밀문장XYZ"
    assert call(url + "/score", json.dumps({"texts": [secret]}).encode())[0] == 200
    time.sleep(0.3)
    text = log.read_text()
    assert "scored 1 texts" in text and secret not in text


@pytest.mark.slow
def test_readme_request_example_is_served(server):
    url, *_ = server
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## 엔드포인트 호출", 1)[1]
    request = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    documented = json.loads(re.findall(r"```json\n(.*?)\n```", section, re.S)[1])
    status, response = call(url + "/score", json.dumps(request).encode())
    assert status == 200 and set(response) == set(documented)
    assert len(response["embeddings"]) == len(request["texts"])


@pytest.mark.slow
def test_the_readme_local_serving_layout_starts_cleanly(tiny_model_dir, tmp_path):
    """The README serves outputs/pipeline/model through a <name>/<version> link, the layout azmlinfsrv
    lists at start-up; the server must start without a traceback and name the model name:version."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## 엔드포인트 호출", 1)[1]
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    link = re.search(r'ln -sfn "\$\(pwd\)/outputs/pipeline/model" (\S+)', commands).group(1)
    model_dir = re.search(r'--model_dir "\$\(pwd\)/(\S+)"', commands).group(1)
    (tmp_path / "outputs" / "pipeline").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, tmp_path / "outputs" / "pipeline" / "model")
    (tmp_path / "outputs" / "pipeline" / "model.pipeline_key").write_text("key")
    (tmp_path / link).parent.mkdir(parents=True)
    (tmp_path / link).symlink_to(tmp_path / "outputs" / "pipeline" / "model")
    log = tmp_path / "server.log"
    with serving(
        Path(sys.executable).with_name("azmlinfsrv"), tmp_path / model_dir, dict(os.environ), log
    ) as url:
        status, response = call(url + "/score", json.dumps({"texts": ["PWM이 뭐야?"]}).encode())
    assert status == 200 and response["model"] == "bge-m3-kr:1", response
    assert "Traceback" not in log.read_text()


def test_model_folder_discovery(tmp_path, model_dir):
    import src.score as score

    assert score.find_model_folder(model_dir) == model_dir / "model"
    assert score.registered_name(model_dir, model_dir / "model") == "bge-m3-kr:1"
    assert score.registered_name(tmp_path, tmp_path / "bge-m3-kr") == "bge-m3-kr"  # a local folder
    assert score.registered_name(tmp_path, tmp_path / "bge-m3-kr" / "2" / "model") == "bge-m3-kr:2"
    with pytest.raises(RuntimeError, match="no sentence-transformers model folder"):
        score.find_model_folder(tmp_path)
    shutil.copytree(model_dir / "model", tmp_path / "a")
    shutil.copytree(model_dir / "model", tmp_path / "b")
    with pytest.raises(RuntimeError, match="several model folders"):
        score.find_model_folder(tmp_path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    JSON.map(json.dumps),
    st.fixed_dictionaries({"texts": st.lists(st.text(max_size=50), max_size=5)},
                          optional={"input_type": st.sampled_from(["query", "passage", "x"]), "normalize": JSON}).map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
))  # fmt: skip
def test_fuzzed_requests_never_fail_with_a_server_error(loaded_score, body):
    result = loaded_score.run(body)
    if isinstance(result, dict):
        assert len(result["embeddings"]) >= 1 and result["dim"] == 32
    else:
        assert 400 <= result.status_code < 500


@pytest.mark.slow
def test_init_warns_when_the_text_limit_allows_oversized_responses(model_dir, monkeypatch, caplog):
    import src.score as score

    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("SCORE_MAX_TEXTS", "64")
    monkeypatch.setenv("SCORE_MAX_RESPONSE_BYTES", "10000")  # 64 x 32 dims x 22 bytes = 45,056 > 10,000
    with caplog.at_level(logging.WARNING, logger="score"):
        score.init()
    assert "responses of up to 45056 bytes" in caplog.text
    caplog.clear()
    monkeypatch.setenv("SCORE_MAX_RESPONSE_BYTES", "1500000")
    with caplog.at_level(logging.WARNING, logger="score"):
        score.init()
    assert "responses of up to" not in caplog.text


@pytest.fixture(scope="module", params=["torch", "onnx-int8"])
def loaded_score(scoring, model_dir, request):
    with scoring(model_dir, request.param) as score:
        yield score


@pytest.mark.slow
def test_the_lean_path_serves_without_importing_torch(model_dir):
    """score.py as the inference server loads it (by file path), with the default backend: it picks the
    int8 file, answers, and neither torch nor sentence-transformers is ever imported."""
    program = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('entry_module', sys.argv[1])\n"
        "score = importlib.util.module_from_spec(spec); spec.loader.exec_module(score)\n"
        "score.init()\n"
        "out = score.run(json.dumps({'texts': ['PWM이 뭐야?'], 'input_type': 'query'}))\n"
        "print(json.dumps({'backend': score.backend, 'dim': out['dim'],\n"
        "                  'heavy': sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)}))\n"
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SCORE_BACKEND"} | {
        "AZUREML_MODEL_DIR": str(model_dir)
    }
    done = subprocess.run([sys.executable, "-c", program, str(ROOT / "src" / "score.py")], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"backend": "onnx-int8", "dim": 32, "heavy": []}


def test_backend_choice(model_dir, tiny_model_dir, tmp_path, monkeypatch):
    import src.score as score

    folder = model_dir / "model"
    assert score.pick_backend(folder, "auto") == "onnx-int8"
    assert score.pick_backend(tiny_model_dir, "auto") == "torch"  # no ONNX files: PyTorch
    assert score.pick_backend(folder, "onnx") == "onnx"
    fp32_only = tmp_path / "fp32"
    shutil.copytree(folder, fp32_only, ignore=shutil.ignore_patterns("model_qint8_*"))
    assert score.pick_backend(fp32_only, "auto") == "onnx"  # exported with --quantize none
    with pytest.raises(RuntimeError, match="SCORE_BACKEND must be one of auto, torch, onnx, onnx-int8"):
        score.pick_backend(folder, "tensorrt")
    monkeypatch.setattr(score.importlib.util, "find_spec", lambda name: None)  # an environment without torch
    with pytest.raises(RuntimeError, match="has no ONNX variant and this environment has no torch"):
        score.pick_backend(tiny_model_dir, "auto")
