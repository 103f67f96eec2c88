"""Export a sentence-transformers model folder to ONNX: an fp32 file and an int8 file (dynamic quantization).

    uv run python -m src.export --model outputs/pipeline/model
    uv run python -m src.export --model outputs/pipeline/model --quantize arm64 --overwrite   # a Mac's int8 file

The files go into ``<model>/onnx/`` in the layout sentence-transformers' ONNX backend reads (``model.onnx``,
``model_qint8_<cpu>.onnx``), with what ``src.onnx_encoder`` needs to serve them without torch
(``encoder.json``, ``tokenizer.json``, and for a BGE-M3 folder ``m3_heads.npz``: the sparse and ColBERT heads
as numpy weights applied to the ONNX transformer's token states, so all three M3 modes are served lean).

Parity is checked before anything is written: each variant encodes fixed Korean/English electronics texts as
queries and passages, and its cosine to the PyTorch embedding is reported. A variant whose mean cosine is
under ``--min_cosine`` (default 0.99) is refused: the command exits 1 and the folder is left as it was.

Flow: 1. load the model → 2. export fp32 → 3. quantize to int8 → 4. parity of each variant → 5. write.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src import cli, m3
from src.base_model import STANDIN_DIR, STANDIN_NAME, ModelNotFound, load_sentence_transformer, resolve_model
from src.data import atomic_path
from src.onnx_encoder import (
    FORMAT,
    FP32_FILE,
    INT8_PREFIX,
    M3_HEADS,
    MANIFEST,
    ONNX_DIR,
    TOKENIZER,
    OnnxEncoder,
    weights_fingerprint,
)

# Per target CPU, onnxruntime's dynamic quantization settings (as Optimum's AutoQuantizationConfig presets):
# int8 weights per output channel; AVX2 without VNNI can overflow u8 x s8 products, so its weights use 7 bits.
QUANTIZE = {
    "avx2": {"reduce_range": True},
    "avx512_vnni": {"reduce_range": False},
    "arm64": {"reduce_range": False},
}
SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")
EXTERNAL_DATA_BYTES = int(
    1.8 * 2**30
)  # a graph above this keeps its weights in <file>_data (protobuf's 2 GB cap)
PARITY_TEXTS = [
    "PWM이 뭐야?", "강압 컨버터", "MOSFET 게이트 구동 원리", "ADC와 DAC의 차이", "decoupling capacitor",
    "I2C, SPI, UART 중 어떤 버스를 쓸까?", "RS-485 종단 저항", "LDO dropout voltage",
    "펄스 폭 변조(PWM)는 스위칭 주기에서 켜짐 시간의 비율(듀티비)을 바꾸어 부하에 걸리는 평균 전압을 조절한다.",
    "벅 컨버터는 스위치, 다이오드, 인덕터와 커패시터로 입력보다 낮은 직류 전압을 효율적으로 만든다.",
    "NTC 서미스터는 온도가 오르면 저항이 감소하므로 온도 측정과 돌입 전류 제한에 쓰인다.",
    "A decoupling capacitor placed close to the VDD pin supplies fast current transients and shunts noise.",
    "유효전력, 무효전력, 피상전력의 관계는 S² = P² + Q² 이고, 역률은 P/S 이다.",
    "3상 유도전동기의 슬립은 동기 속도와 회전자 속도의 차이를 동기 속도로 나눈 값이다.",
    "Σ-Δ ADC는 오버샘플링과 노이즈 셰이핑으로 양자화 잡음을 관심 대역 밖으로 밀어낸다. " * 4,
    "  앞뒤   공백이   많은   문장  ",
]  # fmt: skip


@dataclass(frozen=True)
class Parity:
    """Cosine between the PyTorch and one ONNX variant's embeddings of PARITY_TEXTS (as queries and passages)."""

    mean: float
    minimum: float
    m3: dict[str, float] | None = None  # BGE-M3: mean cosine of the ColBERT vectors and of the sparse weights

    def as_dict(self) -> dict:
        """The figures recorded in encoder.json."""
        return {"mean_cosine": round(self.mean, 6), "min_cosine": round(self.minimum, 6)} | (self.m3 or {})

    def __str__(self) -> str:
        """One line for the console."""
        heads = "".join(f", {k} {v:.5f}" for k, v in (self.m3 or {}).items())
        return f"cosine to PyTorch mean {self.mean:.5f}, min {self.minimum:.5f}{heads}"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument("--model", type=cli.model_name, default="outputs/pipeline/model",
                   help="local sentence-transformers model folder; onnx/ is written inside it")  # fmt: skip
    p.add_argument("--quantize", choices=[*QUANTIZE, "none"], default="avx2",
                   help="CPU the int8 file is tuned for: avx2 (7-bit weights, right on every x86 CPU), avx512_vnni "
                        "(Xeon with VNNI), arm64 (Apple silicon); none: fp32 only")  # fmt: skip
    p.add_argument("--min_cosine", type=cli.number(float, -1, 1), default=0.99,
                   help="refuse a variant whose mean cosine to PyTorch is below this")  # fmt: skip
    p.add_argument("--opset", type=cli.number(int, 14, 23), default=17, help="ONNX opset")
    p.add_argument("--overwrite", action="store_true", help="replace an existing onnx/ folder")
    p.add_argument("--seed", type=cli.non_negative_int, default=42,
                   help="accepted as by every stage; export makes no random choice (same model, same files)")  # fmt: skip
    return p


def check_supported(model, folder: Path) -> dict:
    """What the ONNX encoder must do around the transformer (encoder.json), or a UserError for a module chain
    it does not reproduce (only Transformer → Pooling (mean or cls, prompt tokens pooled) → optional Normalize)."""
    kinds = [type(module).__name__ for module in model]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in SUPPORTED_MODULES for k in kinds):
        raise cli.UserError(
            f"cannot export modules {' → '.join(kinds)}: only Transformer → Pooling → Normalize"
        )
    pooling = model[1].pooling_mode if hasattr(model[1], "pooling_mode") else model[1].get_pooling_mode_str()
    if pooling not in ("mean", "cls"):
        raise cli.UserError(f"cannot export pooling mode {pooling!r}: only mean and cls")
    if pooling == "mean" and not getattr(model[1], "include_prompt", True):
        raise cli.UserError(
            "cannot export a mean pooling that leaves the prompt tokens out (include_prompt false)"
        )
    tokenizer, config = model[0].tokenizer, model[0].auto_model.config
    # RoBERTa-style position ids start after the padding id: XLM-R's 514 positions hold 512 tokens
    offset = config.pad_token_id + 1 if config.model_type in ("xlm-roberta", "roberta", "camembert") else 0
    return {
        "format": FORMAT,
        "source": weights_fingerprint(folder),
        "dim": model.get_embedding_dimension(),
        "max_length": int(model.max_seq_length),
        # sentence-transformers truncates queries and documents at their own lengths when the model sets them
        "query_length": int(getattr(model[0], "query_length", None) or model.max_seq_length),
        "document_length": int(getattr(model[0], "document_length", None) or model.max_seq_length),
        "max_positions": int(config.max_position_embeddings - offset),  # FlagEmbedding's M3 encode reads up to here
        "pooling": pooling,
        "normalize": kinds[-1] == "Normalize",
        "prompts": {"query": model.prompts.get("query", ""),
                    "document": next((model.prompts[k] for k in ("document", "passage", "corpus") if k in model.prompts), "")},
        "pad_token_id": int(tokenizer.pad_token_id),
        # the tokens FlagEmbedding leaves out of the lexical weights
        "special_token_ids": sorted({int(tokenizer.convert_tokens_to_ids(t)) for t in
                                     (tokenizer.cls_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) if t}),
    }  # fmt: skip


def export_fp32(model, path: Path, opset: int) -> None:
    """The transformer as ONNX at ``path``: (input_ids, attention_mask[, token_type_ids]) [batch, tokens]
    -> last_hidden_state [batch, tokens, hidden], dynamic in batch and tokens. A graph over protobuf's 2 GB
    (bge-m3 in fp32: 2.3 GB) keeps its weights beside it in one ``<name>_data`` file."""
    import onnx
    import torch

    transformer = model[0].auto_model.eval()
    names = [
        n
        for n in ("input_ids", "attention_mask", "token_type_ids")
        if n in model[0].tokenizer.model_input_names
    ]

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs):
            return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

    # two texts of different lengths: the traced graph keeps the padding mask (a batch without padding
    # would let transformers drop the mask at trace time and bake that in)
    sample = model[0].tokenizer(
        ["PWM이 뭐야?", "벅 컨버터는 전압을 낮춘다"], padding=True, return_tensors="pt"
    )
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in [*names, "last_hidden_state"]}
    raw = path.parent / "raw"  # over 2 GB the exporter writes one file per weight: gathered below
    raw.mkdir()
    with torch.no_grad(), warnings.catch_warnings():  # the tracer's shape warnings: the parity check decides
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(), tuple(sample[n] for n in names), str(raw / path.name), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)  # fmt: skip
    graph = onnx.load(raw / path.name)
    large = sum(f.stat().st_size for f in raw.iterdir()) > EXTERNAL_DATA_BYTES
    onnx.save_model(graph, path, save_as_external_data=large, all_tensors_to_one_file=True,
                    location=f"{path.name}_data")  # fmt: skip
    if large:  # onnx writes the data file owner-only; the server may run as another user
        umask = os.umask(0)
        os.umask(umask)
        (path.parent / f"{path.name}_data").chmod(0o666 & ~umask)
    shutil.rmtree(raw)


def quantize_int8(fp32: Path, target: Path, cpu: str) -> None:
    """Dynamic int8 quantization of ``fp32`` (weights int8 per channel, activations uint8 at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(
        logging.ERROR
    )  # its advice to pre-process: measured, it changes neither speed nor parity here
    try:
        quantize_dynamic(fp32, target, weight_type=QuantType.QInt8, per_channel=True, **QUANTIZE[cpu])
    finally:
        root.setLevel(level)


def save_m3_heads(folder: Path, target: Path) -> None:
    """FlagEmbedding's sparse_linear.pt / colbert_linear.pt as numpy weights in ``target`` (npz)."""
    import torch

    arrays = {}
    for head in ("sparse", "colbert"):
        state = torch.load(folder / f"{head}_linear.pt", map_location="cpu", weights_only=True)
        arrays[f"{head}_weight"] = state["weight"].float().numpy()
        arrays[f"{head}_bias"] = state["bias"].float().numpy()
    np.savez(target, **arrays)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [n, dim] arrays."""
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def measure_parity(model, reference: dict | None, encoder: OnnxEncoder) -> Parity:
    """The variant's cosines to PyTorch over PARITY_TEXTS as queries and as passages (and, for an M3 model,
    of its ColBERT vectors and sparse weights to FlagEmbedding's ``reference`` output)."""
    cos = np.concatenate([cosines(getattr(model, m)(PARITY_TEXTS, convert_to_numpy=True), getattr(encoder, m)(PARITY_TEXTS))
                          for m in ("encode_query", "encode_document")])  # fmt: skip
    return Parity(float(cos.mean()), float(cos.min()), m3_parity(reference, encoder) if reference else None)


def m3_parity(reference: dict, encoder: OnnxEncoder) -> dict[str, float]:
    """Mean cosines of the variant's ColBERT vectors and sparse weight vectors to FlagEmbedding's."""
    out = encoder.encode_m3(PARITY_TEXTS, return_sparse=True, return_colbert_vecs=True)
    colbert = np.concatenate(
        [cosines(a, b) for a, b in zip(reference["colbert_vecs"], out["colbert_vecs"], strict=True)]
    )

    def sparse_cosine(x: dict, y: dict) -> float:
        keys = sorted(set(x) | set(y))
        if not keys:  # no token weighted above zero by either
            return 1.0
        return float(
            cosines(np.array([[x.get(k, 0.0) for k in keys]]), np.array([[y.get(k, 0.0) for k in keys]]))[0]
        )

    sparse = [
        sparse_cosine(x, y) for x, y in zip(reference["lexical_weights"], out["lexical_weights"], strict=True)
    ]
    return {
        "colbert_mean_cosine": round(float(colbert.mean()), 6),
        "sparse_mean_cosine": round(float(np.mean(sparse)), 6),
    }


def refusal(backend: str, parity: Parity, min_cosine: float) -> str | None:
    """Why a variant is refused (its mean cosine to PyTorch, dense or an M3 head, below ``min_cosine``), or None."""
    means = {"dense": parity.mean} | {k.split("_")[0]: v for k, v in (parity.m3 or {}).items()}
    for mode, value in means.items():
        if value < min_cosine:
            advice = ("int8 loses too much on this model: export fp32 only with --quantize none, or try another "
                      "--quantize" if backend == "onnx-int8" else "the ONNX graph does not reproduce the model")  # fmt: skip
            return f"{backend}: {mode} mean cosine to PyTorch {value:.4f} is below --min_cosine {min_cosine}; nothing written ({advice})"
    return None


def writable_model_folder(name: str) -> Path:
    """The local model folder ``name`` names, checked before any work: a sentence-transformers folder this
    process may write onnx/ into, and not the offline stand-in (the pipeline keys stages by its files)."""
    if name == STANDIN_NAME:
        raise cli.UsageError(f"{name} is the pipeline's base model and is left as it is: export a copy "
                             f"(cp -r {STANDIN_DIR} outputs/models/e5-copy) or a trained model")  # fmt: skip
    folder = Path(resolve_model(name))
    if not (folder / "modules.json").is_file():
        raise ModelNotFound(f"{name}: not a local sentence-transformers model folder (no modules.json)")
    if not os.access(folder, os.W_OK):
        raise cli.UserError(f"{folder}: not writable, so onnx/ cannot be written inside it; export a copy")
    return folder


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = writable_model_folder(args.model)
    target = folder / ONNX_DIR
    if target.exists() and not args.overwrite:
        raise cli.UsageError(f"{target} exists; pass --overwrite to replace it")
    is_m3 = m3.is_m3(folder)
    if is_m3:
        m3.require_flagembedding(folder)

    # 1. the PyTorch model: the reference every variant is compared with
    model = load_sentence_transformer(str(folder), device="cpu")
    spec = check_supported(model, folder)
    reference = m3.load(folder).encode(PARITY_TEXTS, batch_size=16, return_sparse=True,
                                       return_colbert_vecs=True) if is_m3 else None  # fmt: skip
    variants = {"onnx": FP32_FILE} | (
        {"onnx-int8": f"{INT8_PREFIX}{args.quantize}.onnx"} if args.quantize != "none" else {}
    )
    report = {}
    with tempfile.TemporaryDirectory(prefix=".export-", dir=folder) as tmp:
        work = Path(tmp) / ONNX_DIR
        work.mkdir()
        model[0].tokenizer.backend_tokenizer.save(str(work / TOKENIZER))
        if is_m3:
            save_m3_heads(folder, work / M3_HEADS)

        # 2-3. fp32, then int8 from it
        started = time.perf_counter()
        print(f"exporting {folder.name} to ONNX (opset {args.opset}) ...", file=sys.stderr)
        export_fp32(model, work / FP32_FILE, args.opset)
        seconds = {"onnx": time.perf_counter() - started}
        if "onnx-int8" in variants:
            started = time.perf_counter()
            quantize_int8(work / FP32_FILE, work / variants["onnx-int8"], args.quantize)
            seconds["onnx-int8"] = time.perf_counter() - started

        # 4. parity of each variant against PyTorch (no timings in the manifest: same model, same files)
        (work / MANIFEST).write_text(json.dumps(spec, ensure_ascii=False, indent=2), encoding="utf-8")
        for backend, file_name in variants.items():
            parity = measure_parity(model, reference, OnnxEncoder(folder, backend, onnx_dir=work))
            size = sum(f.stat().st_size for f in work.glob(f"{file_name}*"))  # with its _data file, if any
            report[backend] = {"file": f"{ONNX_DIR}/{file_name}", "bytes": size, **parity.as_dict()}
            print(
                f"  {backend:<10} {size / 2**20:7.1f} MiB  {seconds[backend]:5.1f} s  {parity}",
                file=sys.stderr,
            )
            if reason := refusal(backend, parity, args.min_cosine):
                print(f"error: {reason}", file=sys.stderr)
                return 1  # ran fine, and the answer is no (the temporary folder goes with the with-block)

        # 5. all variants passed: replace onnx/ as a whole
        spec["variants"] = report
        (work / MANIFEST).write_text(json.dumps(spec, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        with atomic_path(target, is_dir=True) as out:
            for f in work.iterdir():
                shutil.move(str(f), out / f.name)
    print(f"wrote {target} ({', '.join(report)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
