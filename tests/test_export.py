"""src.export and src.onnx_encoder: the ONNX variants reproduce the PyTorch model (dense, and BGE-M3's sparse
and ColBERT heads), a lossy int8 export is refused, and the files are the same on every run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from src import m3
from src.export import cosines
from src.export import main as export_main
from src.onnx_encoder import OnnxEncoder, VariantMissing, variant_file
from tests.conftest import ELECTRONICS_TEXTS, export_copy


def with_outlier_embedding(model_dir: Path, target: Path) -> Path:
    """A copy whose last vocabulary row (<mask>, which no text contains) is 1000 in every dimension: PyTorch's
    outputs do not change, but one scale per tensor for the quantized embedding table rounds every other
    row to almost nothing, as activation or weight outliers do to int8 in real models."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("onnx"))
    weights = load_file(target / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name][-1, :] = 1000.0
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_export_writes_the_layout_and_records_parity(tiny_onnx_dir):
    import onnx

    onnx_dir = tiny_onnx_dir / "onnx"
    assert sorted(p.name for p in onnx_dir.iterdir()) == [
        "encoder.json", "model.onnx", "model_qint8_avx2.onnx", "tokenizer.json"
    ]  # fmt: skip
    spec = json.loads((onnx_dir / "encoder.json").read_text())
    assert (spec["dim"], spec["pooling"], spec["normalize"]) == (32, "mean", True)
    assert spec["prompts"] == {"query": "query: ", "document": "passage: "}
    fp32, int8 = spec["variants"]["onnx"], spec["variants"]["onnx-int8"]
    assert fp32["min_cosine"] > 0.99999 and 0.99 <= int8["mean_cosine"] < 1
    assert int8["bytes"] < 0.35 * fp32["bytes"]  # int8 weights: about a quarter of fp32
    graph = onnx.load(onnx_dir / "model.onnx", load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    assert variant_file(tiny_onnx_dir, "onnx-int8") == onnx_dir / "model_qint8_avx2.onnx"


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_encoder_reproduces_sentence_transformers(tiny_onnx_dir, backend):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_onnx_dir), device="cpu")
    encoder = OnnxEncoder(tiny_onnx_dir, backend)
    pairs = [
        (model.encode_query(ELECTRONICS_TEXTS), encoder.encode_query(ELECTRONICS_TEXTS, batch_size=4)),
        (model.encode_document(ELECTRONICS_TEXTS), encoder.encode_document(ELECTRONICS_TEXTS)),
        (model.encode(ELECTRONICS_TEXTS, prompt=""), encoder.encode(ELECTRONICS_TEXTS, prompt="")),
        (model.encode("PWM이 뭐야?"), encoder.encode("PWM이 뭐야?")[None]),
    ]
    for expected, got in pairs:
        assert got.shape == expected.reshape(-1, 32).shape and got.dtype == np.float32
        if backend == "onnx":
            np.testing.assert_allclose(got, expected.reshape(-1, 32), atol=1e-5)
        else:
            assert cosines(got, expected.reshape(-1, 32)).min() > 0.99


@pytest.mark.slow
def test_query_and_document_lengths_are_kept(tiny_model_dir, tmp_path):
    """A model trained with separate query and document lengths (src.train's --max_query_length) truncates
    queries at 8 tokens and documents at 12 here; the ONNX encoder must do the same, exactly."""
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "lengths"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").write_text(
        json.dumps(config | {"query_length": 8, "document_length": 12})
    )
    export_copy(folder, tmp_path / "exported" / "lengths", "--quantize", "none")
    model = SentenceTransformer(str(folder), device="cpu")
    encoder = OnnxEncoder(tmp_path / "exported" / "lengths", "onnx")
    assert (encoder.spec["query_length"], encoder.spec["document_length"]) == (8, 12)
    long_texts = [t for t in ELECTRONICS_TEXTS if len(t) > 30]
    np.testing.assert_allclose(encoder.encode_query(long_texts), model.encode_query(long_texts), atol=1e-5)
    np.testing.assert_allclose(
        encoder.encode_document(long_texts), model.encode_document(long_texts), atol=1e-5
    )
    assert (
        cosines(encoder.encode_query(long_texts), encoder.encode(long_texts, prompt="query: ")).min() < 0.999
    )


def test_onnx_m3_heads_reproduce_flagembedding(tiny_m3_onnx_dir):
    assert (tiny_m3_onnx_dir / "onnx" / "m3_heads.npz").is_file()
    options = {"batch_size": 4, "max_length": 16, "return_sparse": True, "return_colbert_vecs": True}
    expected = m3.load(tiny_m3_onnx_dir).encode(ELECTRONICS_TEXTS, **options)
    got = OnnxEncoder(tiny_m3_onnx_dir, "onnx").encode_m3(ELECTRONICS_TEXTS, **options)
    np.testing.assert_allclose(got["dense_vecs"], expected["dense_vecs"], atol=1e-5)
    for want, have in zip(expected["lexical_weights"], got["lexical_weights"], strict=True):
        assert set(want) == set(have) and all(abs(want[t] - have[t]) < 1e-5 for t in want)
    for want, have in zip(expected["colbert_vecs"], got["colbert_vecs"], strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5)
    assert max(len(v) for v in got["colbert_vecs"]) == 15  # truncated to max_length, [CLS] left out


@pytest.mark.slow
def test_m3_modes_read_past_the_dense_length_as_flagembedding_does(tiny_m3_dir, tmp_path):
    """A fine-tuned bge-m3 keeps its training length (e.g. 256) for dense embeddings, while FlagEmbedding's
    sparse and ColBERT encodes read up to the max_length they are given: the ONNX encoder must too."""
    folder = tmp_path / "short"
    shutil.copytree(tiny_m3_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 8}))
    export_copy(folder, tmp_path / "exported" / "short", "--quantize", "none")
    options = {"batch_size": 4, "max_length": 24, "return_sparse": True, "return_colbert_vecs": True}
    expected = m3.load(folder).encode(ELECTRONICS_TEXTS, **options)
    got = OnnxEncoder(tmp_path / "exported" / "short", "onnx").encode_m3(ELECTRONICS_TEXTS, **options)
    assert max(len(v) for v in got["colbert_vecs"]) == 23  # 24 tokens, not the dense length 8
    for want, have in zip(expected["colbert_vecs"], got["colbert_vecs"], strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5)


@pytest.mark.slow
def test_a_lossy_int8_variant_is_refused_and_nothing_is_written(tiny_model_dir, tmp_path, capsys):
    folder = with_outlier_embedding(tiny_model_dir, tmp_path / "outlier")
    before = sorted(p.name for p in folder.iterdir())
    assert export_main(["--model", str(folder)]) == 1  # ran, and the answer is no
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "onnx-int8: dense mean cosine to PyTorch" in errors[0] and "below --min_cosine 0.99" in errors[0]
    assert sorted(p.name for p in folder.iterdir()) == before  # no onnx/, no temporary folder
    # the fp32 graph has no such problem: exported alone it passes
    assert export_main(["--model", str(folder), "--quantize", "none"]) == 0
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == [
        "encoder.json",
        "model.onnx",
        "tokenizer.json",
    ]
    with pytest.raises(VariantMissing, match="no onnx-int8 variant"):
        OnnxEncoder(folder, "onnx-int8")


@pytest.mark.slow
def test_export_is_deterministic_and_never_overwrites_unasked(tiny_model_dir, tmp_path, capsys):
    folder = export_copy(tiny_model_dir, tmp_path / "model", "--quantize", "arm64")

    def digests() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "onnx").iterdir())
        }

    first = digests()
    assert export_main(["--model", str(folder), "--quantize", "arm64"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert export_main(["--model", str(folder), "--quantize", "arm64", "--overwrite"]) == 0
    assert digests() == first and "model_qint8_arm64.onnx" in first


@pytest.mark.slow
def test_a_graph_over_the_protobuf_limit_keeps_its_weights_in_one_data_file(
    tiny_model_dir, tmp_path, monkeypatch
):
    """bge-m3 in fp32 (2.3 GB) is over protobuf's 2 GB: the weights go to one model.onnx_data beside the graph,
    and every variant still loads and matches. Exercised on the tiny model with the threshold lowered."""
    from src import export

    monkeypatch.setattr(export, "EXTERNAL_DATA_BYTES", 1 << 20)
    folder = export_copy(tiny_model_dir, tmp_path / "large")
    files = {p.name: p.stat().st_size for p in (folder / "onnx").iterdir()}
    assert set(files) == {
        "encoder.json",
        "model.onnx",
        "model.onnx_data",
        "model_qint8_avx2.onnx",
        "tokenizer.json",
    }
    assert files["model.onnx"] < 1 << 20 < files["model.onnx_data"]  # the graph alone, the weights beside it
    assert (folder / "onnx" / "model.onnx_data").stat().st_mode & 0o044  # readable by the server's user too
    variants = json.loads((folder / "onnx" / "encoder.json").read_text())["variants"]
    assert variants["onnx"]["min_cosine"] > 0.99999 and variants["onnx"]["bytes"] > files["model.onnx_data"]


def test_a_damaged_or_foreign_onnx_folder_is_one_clear_error(tiny_onnx_dir, tmp_path, capsys):
    from src import search

    folder = tmp_path / "model"
    shutil.copytree(tiny_onnx_dir, folder)
    (folder / "config.json").write_text((folder / "config.json").read_text().replace("}", ', "note": 1}', 1))
    with pytest.raises(VariantMissing, match="exported from other weights"):
        OnnxEncoder(folder, "onnx")
    shutil.copy(tiny_onnx_dir / "config.json", folder / "config.json")
    (folder / "onnx" / "encoder.json").write_text("{broken")
    assert search.main(["--model", str(folder), "--backend", "onnx", "--query", "PWM"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ")
        and "cannot load the onnx variant (JSONDecodeError" in err
        and "Traceback" not in err
    )
    assert "--overwrite" in err


def test_export_leaves_the_standin_alone(capsys):
    """The stand-in's files key the pipeline's stages: exporting into it would retrain for nothing."""
    assert export_main(["--model", "e5-small-offline"]) == 2
    assert "pipeline's base model and is left as it is" in capsys.readouterr().err


def test_export_refuses_modules_it_cannot_reproduce(tiny_model_dir, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    SentenceTransformer(modules=[model[0], model[1], Dense(32, 8)], device="cpu").save(
        str(tmp_path / "dense")
    )
    assert export_main(["--model", str(tmp_path / "dense")]) == 2
    assert "cannot export modules Transformer → Pooling → Dense" in capsys.readouterr().err
    assert not (tmp_path / "dense" / "onnx").exists()


@pytest.mark.slow
@pytest.mark.standin
def test_the_standin_exports_within_the_parity_threshold(standin_dir, tmp_path):
    """The real multilingual-e5-small: fp32 exact, int8 at or above 0.99 mean cosine (a folder of links to
    the stand-in's files, so the stand-in itself stays as the pipeline hashed it)."""
    folder = tmp_path / "e5"
    shutil.copytree(standin_dir, folder, symlinks=False, copy_function=lambda s, d: Path(d).symlink_to(Path(s).resolve()),
                    ignore=shutil.ignore_patterns("onnx"))  # fmt: skip
    assert export_main(["--model", str(folder)]) == 0
    variants = json.loads((folder / "onnx" / "encoder.json").read_text())["variants"]
    assert variants["onnx"]["min_cosine"] > 0.9999 and variants["onnx-int8"]["mean_cosine"] >= 0.99
    assert variants["onnx-int8"]["bytes"] < 0.3 * variants["onnx"]["bytes"]
