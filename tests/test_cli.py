"""The shared command-line conventions (src.cli) and every stage's handling of bad input through them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src import (
    aml,
    base_model,
    cli,
    evaluate,
    export,
    gate,
    index,
    pipeline,
    search,
    synth_data,
    term_map,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "base_model": base_model,
    "synth_data": synth_data,
    "train": train,
    "evaluate": evaluate,
    "gate": gate,
    "pipeline": pipeline,
    "search": search,
    "term_map": term_map,
    "aml": aml,
    "export": export,
    "index": index,
}
KINDS = ("missing", "empty", "malformed", "out_of_range")


def bad_input(kind: str, tmp: Path, suffix: str = ".jsonl") -> Path:
    """A missing file, an empty one, or one whose second line is broken JSON (the first is blank)."""
    path = tmp / f"input-{kind}{suffix}"
    if kind == "empty":
        path.write_text("")
    elif kind == "malformed":
        path.write_text("\n{broken\n")
    return path


def stage_argv(stage: str, kind: str, tmp: Path, model: Path) -> list[str] | None:
    """The stage's command line for one kind of bad input; None where the stage has no such input."""
    out = ["--output_dir", str(tmp / "out")]
    bad = str(bad_input(kind, tmp)) if kind != "out_of_range" else None
    if stage == "base_model":  # a binary file: no lines to break
        return None if kind in ("out_of_range", "malformed") else ["--bin", bad, *out, "--skip_smoke_test"]
    if stage == "synth_data":
        return ["--test_split", "2", *out] if bad is None else ["--glossary", bad, *out]
    if stage == "train":
        args = ["--base_model", str(model), "--use_cpu", *out]
        return [*args, "--epochs", "-1"] if bad is None else [*args, "--train_data", bad]
    if stage == "evaluate":
        data = bad or str(bad_input("empty", tmp))
        args = ["--model", str(model), "--base_model", "none", "--eval_dir", "", "--sts", "", *out]
        return [
            *args,
            "--test_data",
            data,
            "--corpus",
            data,
            *(["--sample_size", "-5"] if bad is None else []),
        ]
    if stage == "gate":
        return ["--metrics", bad or str(tmp / "m.json"), *(["--max_sts_drop", "-1"] if bad is None else [])]
    if stage == "pipeline":
        flags = "--test_split 2" if bad is None else f"--glossary {bad}"
        return ["--base_model", str(model), *out, "--synth_args", flags]
    if stage == "search":
        args = ["--model", str(model), "--query", "PWM"]
        return [*args, "--top_k", "0"] if bad is None else [*args, "--corpus", bad]
    if stage == "term_map":
        args = ["--model", str(model), *out]
        return [*args, "--neighbors", "0"] if bad is None else [*args, "--glossary", bad]
    if stage == "aml":
        return None if bad is None else ["smoke", "--query", bad, "--passages", bad]
    if stage == "export":  # reads a model folder: no lines to break
        if kind in ("empty", "malformed"):
            return None
        return ["--model", str(model), "--min_cosine", "2"] if bad is None else ["--model", bad]
    if stage == "index":  # reads a folder of documents: no lines to break
        if kind == "malformed":
            return None
        docs = tmp / "docs"
        if kind != "missing":
            docs.mkdir()
        args = ["--docs", str(docs), "--model", str(model), "--index", str(tmp / "index")]
        return [*args, "--chunk_tokens", "0"] if bad is None else args
    raise AssertionError(stage)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_reports_bad_input_in_one_line_with_exit_code_2(
    stage, kind, tmp_path, tiny_model_dir, capsys
):
    argv = stage_argv(stage, kind, tmp_path, tiny_model_dir)
    if argv is None:
        pytest.skip(f"{stage} has no {kind.replace('_', '-')} case")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert STAGES[stage].main(argv) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in captured.err, captured.err
    named = {"missing": ("file not found", "folder not found"), "empty": ("empty", "truncated"), "malformed": (":2:", "line 2"),
             "out_of_range": ("must be",)}[kind]  # fmt: skip
    assert any(n in errors[0] for n in named), errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize("stage, flags, message", [
    ("train", ["--epochs", "-1"], "--epochs: must be a finite number in (0, inf]"),
    ("train", ["--learning_rate", "inf"], "--learning_rate: must be a finite number in (0, 1], got inf"),
    ("train", ["--learning_rate", "nan"], "--learning_rate: must be a finite number in (0, 1], got nan"),
    ("train", ["--learning_rate", "-1"], "--learning_rate: must be a finite number in (0, 1], got -1"),
    ("train", ["--batch_size", "1"], "--batch_size: must be a finite number in [2, inf]"),
    ("train", ["--max_steps", "-2"], "--max_steps: must be a finite number in [-1, inf]"),
    ("train", ["--warmup_ratio", "1"], "--warmup_ratio: must be a finite number in [0, 1)"),
    ("evaluate", ["--sample_size", "-5"], "--sample_size: must be a finite number in [0, inf]"),
    ("evaluate", ["--batch_size", "0"], "--batch_size: must be a finite number in [1, inf]"),
    ("evaluate", ["--bootstrap", "5"], "--bootstrap: must be a finite number in [100, inf]"),
    ("evaluate", ["--m3_weights", "1", "nan", "1"], "--m3_weights: must be a finite number in [0, inf]"),
    ("evaluate", ["--m3_weights", "0", "0", "0", "--model", "src", "--test_data", "README.md", "--corpus", "README.md"],
     "--m3_weights: at least one weight must be above 0"),
    ("synth_data", ["--query_noise", "2"], "--query_noise: must be a finite number in [0, 1]"),
    ("synth_data", ["--cross_lingual", "4"], "--cross_lingual: must be a finite number in [0, 3]"),
    ("synth_data", ["--pairs-per-term", "0"], "--pairs_per_term: must be a finite number in [1, inf]"),
    ("search", ["--bm25_weight", "1.5"], "--bm25_weight: must be a finite number in [0, 1]"),
    ("term_map", ["--min_similarity", "2"], "--min_similarity: must be a finite number in [-1, 1]"),
    ("gate", ["--metrics", "m.json", "--min_ndcg_gain", "inf"], "--min_ndcg_gain: must be a finite number"),
    ("export", ["--min_cosine", "1.5"], "--min_cosine: must be a finite number in [-1, 1], got 1.5"),
    ("search", ["--backend", "tensorrt"], "--backend: invalid choice: 'tensorrt'"),
    ("search", ["--mode", "fuzzy"], "--mode: invalid choice: 'fuzzy'"),
    ("index", ["--docs", ".", "--model", "m", "--overlap_tokens", "-1"], "--overlap_tokens: must be a finite number in [0, 512]"),
])  # fmt: skip
def test_numbers_are_range_checked_before_any_work(stage, flags, message, capsys):
    assert STAGES[stage].main(flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.slow
@pytest.mark.standin
def test_evaluate_scores_the_standin_by_its_short_name(synth_dir, tmp_path, capsys):
    argv = ["--model", "e5-small-offline", "--base_model", "none", "--test_data", str(synth_dir / "test.jsonl"),
            "--corpus", str(synth_dir / "corpus_test.jsonl"), "--sample_size", "20", "--eval_dir", "", "--sts", "",
            "--bootstrap", "100", "--output_dir", str(tmp_path / "r")]  # fmt: skip
    assert evaluate.main(argv) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["model"] == "e5-small-offline" and metrics["data"]["queries"] == 20


@pytest.mark.parametrize("stage", STAGES)
def test_every_help_uses_the_shared_vocabulary(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        STAGES[stage].main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for old in cli.ALIASES:
        assert old not in text, f"{stage} --help shows {old}"
    for flag in ("--model_name", "--model_path", "--output-dir", "--report_dir", "--work_dir"):
        assert flag not in text


def test_old_spellings_and_hyphens_still_parse(tmp_path):
    data = ["--train_data", str(bad_input("empty", tmp_path))]
    new = train.parse_args([*data, "--base_model", "m", "--output_dir", "o", "--overwrite"])
    old = train.parse_args([*data, "--model_name", "m", "--output-dir", "o", "--overwrite_output_dir"])
    assert new == old and new.base_model == "m" and new.overwrite
    config = evaluate.parse_args(["--model_path", "x", "--baseline_model", "none", "--report_dir", "r", "--test_data",
                                  data[1], "--corpus", data[1], "--eval_dir", "", "--sts", ""])  # fmt: skip
    assert (config.model, config.base_model, config.output_dir) == ("x", "none", Path("r"))
    args = search.build_parser().parse_args(["--model_path", "m", "--compare", "b"])
    assert (args.model, args.base_model) == ("m", "b")
    args = search.build_parser().parse_args(["--model-path=m", "--top-k", "3", "--query=--model-path"])
    assert (args.model, args.top_k, args.query) == ("m", 3, ["--model-path"])  # a value is never renamed
    parser = cli.ArgumentParser("x")
    parser.add_argument("rest", nargs="*")
    assert parser.parse_args(["--", "--model_path"]).rest == ["--model_path"]  # nor anything after --


def test_number_types_refuse_nan_infinity_and_out_of_range():
    prob = cli.probability
    assert prob("0.25") == 0.25 and cli.positive_int("3") == 3
    for bad in ("nan", "inf", "-inf", "1.5", "-0.1", "x"):
        with pytest.raises(Exception, match="must be|expected"):
            prob(bad)
    with pytest.raises(Exception, match=r"\(0, 1\]"):
        cli.number(float, 0, 1, open_low=True)("0")
    with pytest.raises(Exception, match="whole number"):
        cli.positive_int("2.5")


def test_keyboard_interrupt_exits_130_and_a_bug_keeps_its_traceback(capsys):
    @cli.entry_point
    def interrupted(argv=None):
        raise KeyboardInterrupt

    @cli.entry_point
    def buggy(argv=None):
        return {}["missing"]

    assert interrupted([]) == 130 and capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyError):
        buggy([])


def test_a_real_process_prints_one_line_for_a_bad_flag():
    result = subprocess.run([sys.executable, "-m", "src.gate", "--metrics", "m.json", "--min_ndcg_gain", "nan"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: argument --min_ndcg_gain: must be a finite number")


# ----------------------------------------------------------------------------- defects, one test each


@pytest.mark.parametrize("where", ["a_file", "under_proc"])
def test_synth_output_dir_that_cannot_be_a_folder(where, tmp_path, capsys):
    target = tmp_path / "taken" if where == "a_file" else Path("/proc/kr-elec-embed")
    if where == "a_file":
        target.write_text("mine")
    argv = ["--glossary", "", "--terms", str(ROOT / "data" / "terms_electronics_ko.txt"), "--acronyms", ""]
    assert synth_data.main([*argv, "--output_dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(target) in err, err


def test_synth_replaces_its_four_outputs_together_or_not_at_all(tmp_path, capsys):
    argv = ["--glossary", "", "--terms", str(ROOT / "data" / "terms_electronics_ko.txt"), "--acronyms", ""]
    out = tmp_path / "data"
    assert synth_data.main([*argv, "--output_dir", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "corpus_test.jsonl").unlink()
    (out / "corpus_test.jsonl").mkdir()  # the fourth output cannot be replaced
    assert synth_data.main([*argv, "--output_dir", str(out), "--seed", "7"]) == 2
    assert "corpus_test.jsonl: is a folder" in capsys.readouterr().err
    for name, data in before.items():  # the other three are the old ones, not a mix of old and new
        assert name == "corpus_test.jsonl" or (out / name).read_bytes() == data
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_evaluate_refuses_a_broken_training_summary(tmp_path):
    folder = tmp_path / "tuned"
    folder.mkdir()
    for content, message in (("{not json", "not a training summary"), ('{"steps": 1}', "field 'base_model'")):
        (folder / "training_summary.json").write_text(content)
        config = evaluate.parse_args(["--model", str(folder), "--test_data", str(folder / "training_summary.json"),
                                      "--corpus", str(folder / "training_summary.json"), "--eval_dir", "", "--sts", ""])  # fmt: skip
        with pytest.raises(cli.UserError, match=message):
            evaluate.baseline_of(config)


@pytest.mark.slow
def test_search_refuses_an_empty_query_and_undecodable_stdin(tiny_model_dir, tmp_path, capsys):
    assert search.main(["--model", str(tiny_model_dir), "--query", "  "]) == 2
    assert "argument --query: empty text" in capsys.readouterr().err
    assert (
        search.main(["--model", str(tiny_model_dir), "--query", "PWM\udcff"]) == 2
    )  # undecodable argv bytes
    assert "argument --query: not valid UTF-8" in capsys.readouterr().err
    corpus = tmp_path / "c.txt"
    corpus.write_text("벅 컨버터\n부스트 컨버터\n")
    result = subprocess.run(
        [sys.executable, "-m", "src.search", "--model", str(tiny_model_dir), "--corpus", str(corpus),
         "--cache_dir", str(tmp_path / "index")],
        cwd=ROOT, input=b"PWM\n\xff\xfe broken\n", capture_output=True, timeout=300,
    )  # fmt: skip
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: <stdin>:2: not valid UTF-8"
    ]


def test_pipeline_refuses_unbalanced_quotes_in_stage_flags(tmp_path, capsys):
    assert pipeline.main(["--output_dir", str(tmp_path), "--synth_args", '--glossary "x']) == 2
    assert "No closing quotation" in capsys.readouterr().err
