"""src.pipeline: synth -> train -> evaluate in one command, and each stage reused when its inputs are unchanged."""

from __future__ import annotations

import json

from src.pipeline import main


def test_pipeline_runs_all_stages_then_reuses_them(tiny_model_dir, tmp_path, capsys):
    argv = ["--base_model", str(tiny_model_dir), "--work_dir", str(tmp_path / "p"),
            "--train_args", "--max_steps 4 --batch_size 8 --eval_steps 2 --max_dev_queries 30 --freeze_layers 1",
            "--eval_args", "--sample_size 60 --bootstrap 200"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "ndcg@10" in captured.out and "Report:" in captured.out
    assert "reusing" not in captured.err
    summary = json.loads((tmp_path / "p" / "model" / "training_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["arguments"]["use_cpu"] is True  # laptop profile
    model_mtime = (tmp_path / "p" / "model" / "model.safetensors").stat().st_mtime_ns

    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("inputs unchanged: reusing") == 3

    argv[-1] = "--sample_size 40 --bootstrap 200"  # only the evaluation changes
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "[synth_data] inputs unchanged" in err and "[train] inputs unchanged" in err
    assert "[evaluate] python -m src.evaluate" in err
    assert (tmp_path / "p" / "model" / "model.safetensors").stat().st_mtime_ns == model_mtime
    assert json.loads((tmp_path / "p" / "report" / "metrics.json").read_text())["data"]["queries"] == 40


def test_a_failing_stage_stops_the_pipeline(tmp_path, capsys):
    assert main(["--base_model", str(tmp_path / "missing-model"), "--work_dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "model folder not found" in err and "pipeline stopped" in err
    assert not (tmp_path / "p" / "model").exists()
