"""src.train on the tiny encoder: concept-aware batches, a full run and its output folder, resume after a
kill, torchrun with 2 CPU processes, LoRA merge, frozen embeddings, MLflow, mining and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from src.cli import UsageError
from src.data import Triplet, read_jsonl
from src.train import (
    SUMMARY_FILE,
    ConceptBatchSampler,
    dev_evaluator,
    load_model,
    main,
    make_loss,
    mine_hard_negatives,
    parse_args,
    split_dev,
    train,
)

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name", str(model), "--train_data", str(data), "--output_dir", str(out), "--use_cpu",
        "--batch_size", "8", "--max_steps", "6", "--eval_steps", "3", "--logging_steps", "2", *extra,
    ]  # fmt: skip


def test_concept_batches_never_repeat_a_concept_and_cover_every_row():
    rng = np.random.default_rng(0)
    concepts = [(f"c{a}", f"c{b}") for a, b in rng.integers(0, 30, size=(500, 2)) if a != b]
    sampler = ConceptBatchSampler(None, batch_size=16, drop_last=False, concepts=concepts, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) and sorted(i for b in batches for i in b) == list(
        range(len(concepts))
    )
    for batch in batches:
        anchors = [concepts[i][0] for i in batch]
        negatives = {concepts[i][1] for i in batch}
        assert len(set(anchors)) == len(anchors) and negatives.isdisjoint(anchors)
        assert len(batch) <= 16
    assert sum(len(b) == 16 for b in batches) > len(batches) / 2
    assert list(ConceptBatchSampler(None, 16, False, concepts=concepts, seed=1)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


@pytest.mark.slow
def test_full_run_writes_a_complete_folder_that_reloads_identically(tiny_model_dir, triplets, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "model"
    model, summary = train(parse_args(tiny_args(tiny_model_dir, triplets, out)))
    names = {p.name for p in out.iterdir()}
    assert {
        "modules.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        SUMMARY_FILE,
    } <= names
    assert {"1_Pooling", "2_Normalize", "config_sentence_transformers.json"} <= names
    assert not (tmp_path / "model-checkpoints").exists()
    saved = json.loads((out / SUMMARY_FILE).read_text())
    assert saved["global_step"] == 6 and saved["data"]["train_rows"] > 0
    assert saved["dev_metrics"]["dev_cosine_ndcg@10"] == summary["dev_metrics"]["dev_cosine_ndcg@10"]
    assert saved["peak_memory_mb"] > 0 and saved["examples_per_s_incl_dev_eval"] > 0
    reloaded = SentenceTransformer(str(out), device="cpu")
    # the summary's dev metrics are the trainer's own evaluation of the kept checkpoint: evaluating the
    # saved model again gives the same figures
    rows = split_dev(read_jsonl(triplets, Triplet), 0.1, 42).dev
    again = dev_evaluator(rows, 300, 42)(reloaded)
    assert saved["dev_metrics"]["dev_cosine_ndcg@10"] == pytest.approx(again["dev_cosine_ndcg@10"], abs=1e-5)
    assert reloaded.prompts == {"query": "query: ", "document": "passage: "}
    assert reloaded[0].query_length == 64
    texts = ["PWM이 뭐야?", "강압 컨버터의 원리"]
    np.testing.assert_allclose(reloaded.encode_query(texts), model.encode_query(texts), atol=1e-6)
    base = SentenceTransformer(str(tiny_model_dir), device="cpu")
    assert not np.allclose(base.encode_query(texts), reloaded.encode_query(texts), atol=1e-4)


def _weights(path: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
def test_lora_is_merged_into_a_plain_folder(tiny_model_dir, triplets, tmp_path):
    out = tmp_path / "lora"
    assert main(tiny_args(tiny_model_dir, triplets, out, "--lora", "--learning_rate", "1e-3")) == 0
    assert not (out / "adapter_config.json").exists()
    weights, base = _weights(out), _weights(tiny_model_dir)
    assert weights.keys() == base.keys() and not any("lora" in k for k in weights)
    changed = [k for k in base if not np.array_equal(base[k], weights[k])]
    assert any("attention.self.query.weight" in k for k in changed)
    assert not any(
        "embeddings" in k or "LayerNorm" in k for k in changed
    )  # LoRA touched only the adapted linears


@pytest.mark.slow
def test_frozen_embeddings_stay_unchanged(tiny_model_dir, triplets, tmp_path):
    out = tmp_path / "frozen"
    assert (
        main(tiny_args(tiny_model_dir, triplets, out, "--freeze_embeddings", "--learning_rate", "1e-3")) == 0
    )
    weights, base = _weights(out), _weights(tiny_model_dir)
    key = next(k for k in base if "word_embeddings" in k)
    assert np.array_equal(weights[key], base[key])
    assert not np.array_equal(
        weights["encoder.layer.0.output.dense.weight"], base["encoder.layer.0.output.dense.weight"]
    )


@pytest.mark.slow
def test_frozen_layers_keep_the_embeddings_and_lower_layers(tiny_model_dir, triplets, tmp_path):
    out = tmp_path / "layers"
    assert (
        main(tiny_args(tiny_model_dir, triplets, out, "--freeze_layers", "1", "--learning_rate", "1e-3")) == 0
    )
    weights, base = _weights(out), _weights(tiny_model_dir)
    frozen = [k for k in base if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in base if k.startswith("encoder.layer.1.")]
    assert frozen and trained
    assert all(np.array_equal(weights[k], base[k]) for k in frozen)
    assert all(not np.array_equal(weights[k], base[k]) for k in trained if k.endswith("dense.weight"))


@pytest.mark.slow
def test_merge_base_interpolates_the_trained_weights_with_the_base(tiny_model_dir, triplets, tmp_path):
    assert main(tiny_args(tiny_model_dir, triplets, tmp_path / "full", "--learning_rate", "1e-3")) == 0
    flags = ("--learning_rate", "1e-3", "--merge_base", "0.25")
    assert main(tiny_args(tiny_model_dir, triplets, tmp_path / "merged", *flags)) == 0
    full, merged, base = _weights(tmp_path / "full"), _weights(tmp_path / "merged"), _weights(tiny_model_dir)
    key = "encoder.layer.1.output.dense.weight"
    assert not np.allclose(full[key], base[key])
    for k in base:
        np.testing.assert_allclose(merged[k], 0.25 * full[k] + 0.75 * base[k], atol=1e-6, err_msg=k)


@pytest.mark.slow
def test_pairs_only_training_feeds_no_negative_column(tiny_model_dir, triplets, tmp_path):
    assert main(tiny_args(tiny_model_dir, triplets, tmp_path / "pairs", "--hard_negatives", "none")) == 0
    assert main(tiny_args(tiny_model_dir, triplets, tmp_path / "rows")) == 0
    pairs, rows = (json.loads((tmp_path / d / SUMMARY_FILE).read_text()) for d in ("pairs", "rows"))
    assert pairs["data"]["columns"] == ["query", "positive"]
    assert rows["data"]["columns"] == ["query", "positive", "negative"]
    assert (
        _weights(tmp_path / "pairs")["encoder.layer.1.output.dense.weight"].tolist()
        != _weights(tmp_path / "rows")["encoder.layer.1.output.dense.weight"].tolist()
    )


@pytest.mark.slow
def test_gist_guide_ignores_an_in_batch_false_negative(tiny_model_dir, triplets, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    queries, positives = ["벅 컨버터 원리", "ADC 분해능 뜻"], ["같은 설명 문단", "같은 설명 문단"]
    features = [model.tokenize(queries), model.tokenize(positives)]
    losses = {}
    for name in ("mnrl", "gist"):
        args = parse_args(
            tiny_args(tiny_model_dir, triplets, tmp_path / "m", "--loss", name, "--gist_margin", "0.1")
        )
        losses[name] = make_loss(args, model, str(tiny_model_dir), "cpu")(features, None).item()
    # mnrl counts the other row's (identical) positive as a negative: at least log 2; the guide masks it
    assert losses["mnrl"] >= np.log(2) - 1e-4 and losses["gist"] < losses["mnrl"] - 0.3
    assert main(tiny_args(tiny_model_dir, triplets, tmp_path / "gist", "--loss", "gist")) == 0
    summary = json.loads((tmp_path / "gist" / SUMMARY_FILE).read_text())
    assert np.isfinite(summary["train_loss"]) and summary["arguments"]["loss"] == "gist"


@pytest.mark.slow
def test_attention_dropout_applies_to_training_only(tiny_model_dir, triplets, tmp_path):
    from sentence_transformers import SentenceTransformer

    args = parse_args(tiny_args(tiny_model_dir, triplets, tmp_path / "m", "--attention_dropout", "0"))
    encoder = load_model(str(tiny_model_dir), args, "cpu")[0].auto_model
    attention = [m.dropout for name, m in encoder.named_modules() if name.endswith("attention.self")]
    hidden = [m for name, m in encoder.named_modules() if name.endswith("output.dropout")]
    assert attention and all(d.p == 0.0 for d in attention)
    assert hidden and all(d.p == 0.1 for d in hidden)  # only attention dropout changes
    assert encoder.config.attention_probs_dropout_prob == 0.1  # what a saved folder records

    out = tmp_path / "out"
    assert main(tiny_args(tiny_model_dir, triplets, out, "--attention_dropout", "0")) == 0
    reloaded = SentenceTransformer(str(out), device="cpu")[0].auto_model
    assert all(m.dropout.p == 0.1 for name, m in reloaded.named_modules() if name.endswith("attention.self"))


@pytest.mark.slow
def test_mlflow_logs_params_and_metrics_when_configured(tiny_model_dir, triplets, tmp_path, monkeypatch):
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert main(tiny_args(tiny_model_dir, triplets, tmp_path / "m")) == 0
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert float(run["params.learning_rate"]) == 2e-5
    assert run["metrics.loss"] > 0 and 0 <= run["metrics.eval_dev_cosine_ndcg_10"] <= 1


@pytest.mark.slow
def test_mined_negatives_are_other_concepts_below_the_positive(tiny_model_dir, triplets):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    rows = read_jsonl(triplets, Triplet)[:120]
    mined = mine_hard_negatives(model, rows, margin=0.05, batch_size=32)
    assert (
        len(mined) == len(rows)
        and sum(m.negative != r.negative for m, r in zip(mined, rows, strict=True)) > 0
    )
    for m in mined:
        assert m.negative_concept_id != m.concept_id
        q = model.encode_query(m.query, normalize_embeddings=True)
        p, n = model.encode_document([m.positive, m.negative], normalize_embeddings=True)
        if m.negative not in {r.negative for r in rows if r.query == m.query}:
            assert q @ n <= q @ p - 0.05 + 1e-5


@pytest.mark.slow
def test_resume_after_kill_continues_without_repeating_steps(tiny_model_dir, triplets, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "src.train", *tiny_args(tiny_model_dir, triplets, out)]
    args[args.index("--max_steps") + 1] = "60"
    args[args.index("--eval_steps") + 1] = "4"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "run-checkpoints" / "checkpoint-8" / "trainer_state.json"
    deadline = time.time() + 240
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists() and not out.exists()  # killed mid-run: nothing half-written
    assert main([*args[3:], "--resume"]) == 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["global_step"] == 60 and summary["resumed_from_step"] >= 8
    assert summary["steps_this_run"] == 60 - summary["resumed_from_step"]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes(tiny_model_dir, triplets, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "src.train", *tiny_args(tiny_model_dir, triplets, out)]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 6 and summary["precision"] == "fp32"
    assert result.stdout.count("model written to") == 1  # rank 0 alone reports and saves


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_file", "argument --train_data: " + "{tmp}/nope.jsonl: file not found"),
        ("empty_file", "file is empty"),
        ("malformed", ":2: malformed JSON"),
        ("no_positive", ":1: missing field 'positive'"),
        ("unknown_model", "model folder not found"),
        ("existing_output", "exists and is not a previous training run"),
        ("batch_size_1", "argument --batch_size: must be a finite number in [2, inf], got 1"),
        ("negative_epochs", "argument --epochs: must be a finite number in (0, inf], got -1"),
        ("zero_steps", "--max_steps must be -1 (run the epochs) or a positive number of steps"),
        ("nan_learning_rate", "argument --learning_rate: must be a finite number in (0, 1], got nan"),
        ("negative_learning_rate", "argument --learning_rate: must be a finite number in (0, 1], got -1"),
        ("truncated_weights", "cannot load the model (SafetensorError"),
        ("empty_config", "cannot load the model"),
        ("lora_and_frozen", "--lora already freezes"),
        ("too_many_frozen_layers", "--freeze_layers 2: the model has 2 layers"),
        ("resume_without_checkpoint", "no checkpoint"),
        ("attention_dropout_out_of_range", "argument --attention_dropout: must be a finite number in [0, 1)"),
        ("merge_base_zero", "argument --merge_base: must be a finite number in (0, 1]"),
        ("gist_margin_out_of_range", "argument --gist_margin: must be a finite number in [0, 1)"),
        ("mining_without_negatives", "--mine_hard_negatives needs --hard_negatives row"),
    ],
)
def test_bad_input_gives_one_error_and_writes_nothing(
    tiny_model_dir, triplets, tmp_path, capsys, case, expected
):
    good = triplets.read_text(encoding="utf-8").splitlines()
    row = json.loads(good[0])
    data, model, extra = tmp_path / "d.jsonl", tiny_model_dir, []
    data.write_text("\n".join(good[:40]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    if case == "missing_file":
        data = tmp_path / "nope.jsonl"
    elif case == "empty_file":
        data.write_text("")
    elif case == "malformed":
        data.write_text(good[0] + "\n{broken\n")
    elif case == "no_positive":
        data.write_text(json.dumps({k: v for k, v in row.items() if k != "positive"}) + "\n")
    elif case == "unknown_model":
        model = tmp_path / "no-such-model"
    elif case == "existing_output":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "batch_size_1":
        extra = ["--batch_size", "1"]
    elif case == "negative_epochs":
        extra = ["--max_steps", "-1", "--epochs", "-1"]
    elif case == "zero_steps":
        extra = ["--max_steps", "0"]
    elif case in ("nan_learning_rate", "negative_learning_rate"):
        extra = ["--learning_rate", "nan" if case.startswith("nan") else "-1"]
    elif case in ("truncated_weights", "empty_config"):
        model = tmp_path / "broken-model"
        shutil.copytree(tiny_model_dir, model)
        if case == "truncated_weights":
            weights = model / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:5000])
        else:
            (model / "config.json").write_text("{}")
    elif case == "lora_and_frozen":
        extra = ["--lora", "--freeze_embeddings"]
    elif case == "too_many_frozen_layers":
        extra = ["--freeze_layers", "2"]
    elif case == "resume_without_checkpoint":
        extra = ["--resume"]
    elif case == "attention_dropout_out_of_range":
        extra = ["--attention_dropout", "1.5"]
    elif case == "merge_base_zero":
        extra = ["--merge_base", "0"]
    elif case == "gist_margin_out_of_range":
        extra = ["--loss", "gist", "--gist_margin", "1.5"]
    elif case == "mining_without_negatives":
        extra = ["--mine_hard_negatives", "--hard_negatives", "none"]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*tiny_args(model, data, out), *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and expected.format(tmp=tmp_path) in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "existing_output":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_default_model_fails_fast_offline_and_names_the_standin(triplets, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "--train_data", str(triplets), "--output_dir", str(tmp_path / "m")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "BAAI/bge-m3" in result.stderr
        and "offline stand-in by its short name: e5-small-offline" in result.stderr
    )
    assert time.time() - started < 60
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
@pytest.mark.standin
def test_seed_command_with_the_standin_reloads_identically(standin_dir, triplets, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "e5"
    argv = ["--train_data", str(triplets), "--epochs", "1", "--batch_size", "2", "--max_seq_length", "128",
            "--use_cpu", "--model_name", "e5-small-offline", "--output_dir", str(out),
            "--max_steps", "4", "--eval_steps", "2", "--max_dev_queries", "40"]  # fmt: skip
    model, summary = train(parse_args(argv))
    assert summary["global_step"] == 4 and summary["base_model_path"] == str(standin_dir)
    reloaded = SentenceTransformer(str(out), device="cpu")
    texts = ["PWM이 뭐야?", "벅 컨버터는 입력보다 낮은 전압을 만든다."]
    np.testing.assert_allclose(reloaded.encode_query(texts), model.encode_query(texts), atol=1e-5)
    np.testing.assert_allclose(reloaded.encode_document(texts), model.encode_document(texts), atol=1e-5)


@pytest.mark.slow
def test_cuda_requested_without_a_gpu_stops_instead_of_training_on_cpu(tiny_model_dir, triplets, tmp_path):
    """--device cuda (the gpu profile, the Azure ML component) means CUDA or a one-line error, exit 2,
    nothing written; CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on a GPU machine too."""
    out = tmp_path / "m"
    argv = [a for a in tiny_args(tiny_model_dir, triplets, out) if a != "--use_cpu"]
    done = subprocess.run([sys.executable, "-m", "src.train", *argv, "--device", "cuda"], cwd=ROOT,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --device cuda: CUDA is not available to torch") and "--device cpu" in last
    assert "Traceback" not in done.stderr and not out.exists() and not out.with_name("m-checkpoints").exists()
    with pytest.raises(UsageError, match="--use_cpu contradicts --device cuda"):
        parse_args([*argv, "--use_cpu", "--device", "cuda"])
    assert parse_args([*argv, "--use_cpu"]).device == "cpu"


def test_non_finite_losses_and_weights_are_refused(tiny_model_dir):
    import torch

    from src.train import TrainingDiverged, check_finite

    model = load_model(str(tiny_model_dir), parse_args(["--train_data", __file__]), "cpu")
    check_finite(model.parameters(), 0.5)  # a healthy model passes
    with pytest.raises(TrainingDiverged, match="loss nan, 0 non-finite weights"):
        check_finite(model.parameters(), float("nan"))
    with torch.no_grad():
        next(model.parameters())[0, :3] = float("inf")
    with pytest.raises(TrainingDiverged, match="3 non-finite weights; nothing was saved"):
        check_finite(model.parameters(), 0.5)


@pytest.mark.slow
def test_a_run_that_diverges_saves_nothing(tiny_model_dir, triplets, poisoned_copy, tmp_path, capsys):
    """A base model with NaN weights makes every loss NaN (which the trainer's log filter reports as 0.0):
    the weights give it away; the run ends with one error, exit 2, and neither a model folder nor checkpoints."""
    base = poisoned_copy(tiny_model_dir, tmp_path / "poisoned")
    out = tmp_path / "m"
    assert main(tiny_args(base, triplets, out)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert (
        len(err) == 1 and "training diverged" in err[0] and "non-finite weights; nothing was saved" in err[0]
    ), err
    assert not out.exists() and not out.with_name("m-checkpoints").exists()
