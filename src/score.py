"""Azure ML online-endpoint scoring script: embeddings from the fine-tuned model.

The Azure ML inference server (``azmlinfsrv``) imports this file, calls ``init()`` once and ``run()``
for every POST /score request.

Request (JSON):   {"texts": ["PWM이 뭐야?"], "input_type": "query", "normalize": true}
                  the seed's form {"inputs": {"data": ["PWM이 뭐야?"]}} is accepted too
Response (JSON):  {"embeddings": [[...]], "dim": 384, "model": "bge-m3-kr:3", "input_type": "query"}
                  ("model" is the registered model's name:version, read from AZUREML_MODEL_DIR)

``input_type`` "query" or "passage" applies the model's query or document prompt (none: no prompt).
For a BGE-M3 model folder (with FlagEmbedding's sparse_linear.pt / colbert_linear.pt heads)
``"return_sparse": true`` adds "sparse": per text a {token: weight} map, and ``"return_colbert": true``
adds "colbert": per text its token vectors; a dense-only model answers those with a 400.
Limits come from environment variables: SCORE_MAX_TEXTS (texts per request, default 64),
SCORE_MAX_CHARS (characters per text, default 2000), SCORE_MAX_BYTES (request body, default 1 MiB),
SCORE_MAX_RESPONSE_BYTES (response body, default 1,500,000: managed online endpoints answer a larger
response with a 424, so a request whose response would exceed it gets a 413 instead), SCORE_BATCH_SIZE
(encoding batch, default 16; bounds memory for large requests). Bad requests get a 4xx JSON error; only a
genuine server fault is a 500. Logs carry counts, sizes and timings, never text.

Backend, from SCORE_BACKEND (default "auto"): "auto" serves the folder's int8 ONNX file
(onnx/model_qint8_*.onnx, written by src.export) when it has one, else its fp32 ONNX file, else PyTorch;
"onnx-int8", "onnx" (fp32) and "torch" force one. The ONNX backends run on onnxruntime + tokenizers + numpy through
onnx_encoder.py, deployed beside this file, and never import torch: that is the lean scoring environment
(azureml/score-env). The sparse and ColBERT outputs of an M3 model come from the same ONNX run there.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger("score")

INPUT_TYPES = ("query", "passage")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
model = None  # a SentenceTransformer, or an onnx_encoder.OnnxEncoder
m3_model = None  # the M3 encoder when the folder has the heads: BGEM3FlagModel, or the same OnnxEncoder
backend = ""
# src.m3.HEADS; repeated because Azure ML deploys this file without the rest of src/
M3_HEADS = ("colbert_linear.pt", "sparse_linear.pt")
model_name = ""
MAX_RESPONSE_BYTES = 1_500_000  # the managed online endpoint's cap on a response body
# the longest JSON float of an embedding with its separator, e.g. "-0.012345678901234567, "
JSON_FLOAT_BYTES = 22


class Request(NamedTuple):  # not a dataclass: azmlinfsrv loads this file outside sys.modules
    texts: list[str]
    input_type: str | None
    normalize: bool
    return_sparse: bool
    return_colbert: bool


class BadRequest(ValueError):
    """The request is malformed or over a limit: answered with HTTP 400 or 413."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def limit(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def find_model_folder(root: Path) -> Path:
    """The one sentence-transformers folder (holding modules.json) at or below ``root``.

    Azure ML mounts a registered model at AZUREML_MODEL_DIR/<name>/<version>/... with the registered
    folder inside, so the folder is searched for rather than assumed."""
    found = sorted(Path(d) for d, _, files in os.walk(root, followlinks=True) if "modules.json" in files)
    if not found:
        raise RuntimeError(f"no sentence-transformers model folder (modules.json) under {root}")
    if len(found) > 1:
        raise RuntimeError(f"several model folders under {root}: {', '.join(map(str, found))}")
    return found[0]


def init() -> None:
    """Load the model once per worker from AZUREML_MODEL_DIR, with the backend SCORE_BACKEND picks."""
    global model, m3_model, model_name, backend

    logger.setLevel(logging.INFO)  # the server owns the handlers; this logger's records reach them at INFO
    root = os.environ.get("AZUREML_MODEL_DIR")
    if not root:
        raise RuntimeError("AZUREML_MODEL_DIR is not set")
    folder = find_model_folder(Path(root))
    started = time.perf_counter()
    backend = pick_backend(folder, os.environ.get("SCORE_BACKEND", "auto"))
    if backend == "torch":
        model, m3_model = load_torch(folder)
    else:
        model = onnx_encoder().OnnxEncoder(folder, backend)
        m3_model = model if model.heads is not None else None
    model_name = registered_name(Path(root), folder)
    dim = model.get_embedding_dimension()
    logger.info("loaded model %s (dim %d, backend %s) in %.1f s", model_name, dim, backend,
                time.perf_counter() - started)  # fmt: skip
    worst = limit("SCORE_MAX_TEXTS", 64) * dim * JSON_FLOAT_BYTES
    cap = limit("SCORE_MAX_RESPONSE_BYTES", MAX_RESPONSE_BYTES)
    if worst > cap:
        logger.warning("SCORE_MAX_TEXTS x dim allows responses of up to %d bytes, over SCORE_MAX_RESPONSE_BYTES (%d): "
                       "the largest requests will get a 413", worst, cap)  # fmt: skip


def onnx_encoder():
    """The onnx_encoder module beside this file, loaded by path: Azure ML deploys src/ as plain files, and
    putting src/ itself on sys.path would let its data.py or cli.py shadow installed packages."""
    if "score_onnx_encoder" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "score_onnx_encoder", Path(__file__).with_name("onnx_encoder.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["score_onnx_encoder"]


def pick_backend(folder: Path, requested: str) -> str:
    """The backend to serve ``folder`` with: ``requested``, or for "auto" the first the folder has of int8
    ONNX, fp32 ONNX (``src.export --quantize none``) and PyTorch."""
    if requested not in BACKENDS:
        raise RuntimeError(f"SCORE_BACKEND must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested != "auto":
        return requested
    for candidate in ("onnx-int8", "onnx"):
        try:
            onnx_encoder().variant_file(folder, candidate)
            return candidate
        except FileNotFoundError:
            pass
    if importlib.util.find_spec("torch") is None:
        raise RuntimeError(f"{folder} has no ONNX variant and this environment has no torch: "
                           "export one with python -m src.export --model <folder>")  # fmt: skip
    return "torch"


def load_torch(folder: Path):
    """(SentenceTransformer, BGEM3FlagModel or None) on CUDA when there is one, else CPU."""
    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    st_model = SentenceTransformer(str(folder), device=device)
    if not all((folder / head).is_file() for head in M3_HEADS):
        return st_model, None
    from FlagEmbedding import BGEM3FlagModel

    return st_model, BGEM3FlagModel(str(folder), use_fp16=device == "cuda", devices=[device])


def registered_name(root: Path, folder: Path) -> str:
    """ "name:version" of the registered model when ``root`` is where Azure ML mounts one
    (.../azureml-models/<name>/<version>) or holds the same layout (<root>/<name>/<version>/..., what
    azmlinfsrv expects of a local --model_dir), else the model folder's name."""
    if root.parent.parent.name == "azureml-models":
        return f"{root.parent.name}:{root.name}"
    parts = folder.relative_to(root).parts
    if len(parts) >= 2 and parts[1].isdigit():
        return f"{parts[0]}:{parts[1]}"
    return folder.name


def parse_request(raw_data) -> Request:
    """Validate a request body; raises BadRequest."""
    if isinstance(raw_data, bytes):
        try:
            raw_data = raw_data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("request body is not valid UTF-8") from None
    if not isinstance(raw_data, str) or not raw_data.strip():
        raise BadRequest('empty request body: send JSON like {"texts": ["PWM이 뭐야?"]}')
    if len(raw_data.encode("utf-8")) > limit("SCORE_MAX_BYTES", 1 << 20):
        raise BadRequest(f"request body exceeds {limit('SCORE_MAX_BYTES', 1 << 20)} bytes", 413)
    try:
        body = json.loads(raw_data)
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if "texts" in body:
        texts = body["texts"]
    elif isinstance(body.get("inputs"), dict) and "data" in body["inputs"]:
        texts = body["inputs"]["data"]
    else:
        raise BadRequest('missing "texts" (or "inputs": {"data": [...]})')
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        raise BadRequest('"texts" must be a non-empty list of strings')
    if len(texts) > limit("SCORE_MAX_TEXTS", 64):
        raise BadRequest(
            f'"texts" has {len(texts)} items; at most {limit("SCORE_MAX_TEXTS", 64)} per request', 413
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(f'"texts"[{i}] must be a string, got {type(text).__name__}')
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # JSON can spell a lone surrogate ("\ud800"); no text holds one
            raise BadRequest(
                f'"texts"[{i}] is not valid Unicode: a lone surrogate at character {e.start}'
            ) from None
        if len(text) > limit("SCORE_MAX_CHARS", 2000):
            raise BadRequest(
                f'"texts"[{i}] has {len(text)} characters; at most {limit("SCORE_MAX_CHARS", 2000)}', 413
            )
    input_type = body.get("input_type")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise BadRequest(f'"input_type" must be "query" or "passage", got {input_type!r:.40}')
    flags = {}
    for key, default in (("normalize", True), ("return_sparse", False), ("return_colbert", False)):
        flags[key] = body.get(key, default)
        if not isinstance(flags[key], bool):
            raise BadRequest(f'"{key}" must be true or false')
    if (flags["return_sparse"] or flags["return_colbert"]) and m3_model is None:
        raise BadRequest(
            "this model has no sparse/ColBERT heads (not a BGE-M3 model): request dense embeddings only"
        )
    return Request(texts, input_type, **flags)


def embed(texts: list[str], input_type: str | None, normalize: bool) -> list[list[float]]:
    """Embeddings [n, dim] with the prompt of ``input_type``, encoded in bounded batches."""
    encode = {"query": model.encode_query, "passage": model.encode_document}.get(input_type)
    options = {"batch_size": limit("SCORE_BATCH_SIZE", 16), "normalize_embeddings": normalize,
               "convert_to_numpy": True}  # fmt: skip
    vectors = encode(texts, **options) if encode else model.encode(texts, prompt="", **options)
    return vectors.tolist()


def run(raw_data):
    """Score one request: a JSON-serializable dict, or an AMLResponse carrying a 4xx error."""
    from azureml_inference_server_http.api.aml_response import AMLResponse

    started = time.perf_counter()
    size = len(raw_data) if isinstance(raw_data, (str, bytes)) else 0
    try:
        request = parse_request(raw_data)
    except BadRequest as e:
        logger.info("rejected request: status %d, %d bytes", e.status, size)
        return AMLResponse({"error": str(e)}, e.status, json_str=True)
    embeddings = embed(request.texts, request.input_type, request.normalize)
    response = {
        "embeddings": embeddings,
        "dim": len(embeddings[0]),
        "model": model_name,
        "input_type": request.input_type,
    }
    if request.return_sparse or request.return_colbert:
        response.update(m3_outputs(request))
    size_out = len(json.dumps(response).encode("utf-8"))
    cap = limit("SCORE_MAX_RESPONSE_BYTES", MAX_RESPONSE_BYTES)
    if size_out > cap:
        logger.info("rejected request: response of %d bytes over %d", size_out, cap)
        return AMLResponse({"error": f"the response would be {size_out} bytes; at most {cap} "
                            "(SCORE_MAX_RESPONSE_BYTES): send fewer texts per request, or leave out return_colbert"},
                           413, json_str=True)  # fmt: skip
    logger.info("scored %d texts (%d bytes) in %.1f ms", len(request.texts), size,
                1000 * (time.perf_counter() - started))  # fmt: skip
    return response


def m3_outputs(request: Request) -> dict:
    """The requested M3 modes: "sparse" [{token: weight}] and/or "colbert" [[[float] per token]]."""
    encode = m3_model.encode if backend == "torch" else m3_model.encode_m3
    out = encode(request.texts, batch_size=limit("SCORE_BATCH_SIZE", 16), return_dense=False,
                 return_sparse=request.return_sparse, return_colbert_vecs=request.return_colbert)  # fmt: skip
    result = {}
    if request.return_sparse:
        result["sparse"] = [{m3_model.tokenizer.decode([int(t)]): round(float(w), 6) for t, w in weights.items()}
                            for weights in out["lexical_weights"]]  # fmt: skip
    if request.return_colbert:
        result["colbert"] = [v.round(6).tolist() for v in out["colbert_vecs"]]
    return result
