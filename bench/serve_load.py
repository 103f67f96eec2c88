"""Load test of src/score.py behind the real Azure ML inference server, one backend after another, side by side.

For each backend (PyTorch, ONNX fp32, ONNX int8; SCORE_BACKEND) it starts ``azmlinfsrv`` over the model laid
out as Azure mounts a registered model, then N concurrent clients send a fixed number of realistic Korean
query requests to 127.0.0.1, bounded in time. Per backend it prints requests/s, p50/p95/p99 latency,
errors by status, the server's peak RSS (all workers), the cold start (process start to the first answer)
and the latency of one maximal request (SCORE_MAX_TEXTS texts of SCORE_MAX_CHARS characters), which sizes
the deployment's request timeout. With --quality it adds nDCG@10 per backend on the synthetic test split
and the independent evaluation sets (src.evaluate --backend, test part). A model folder without ONNX files
is exported first into a folder of links beside it (the model folder itself is not touched).

    uv run python bench/serve_load.py                                    # stand-in, 3 backends, 8 clients
    uv run python bench/serve_load.py --model outputs/pipeline/model --quality
    uv run python bench/serve_load.py --backends onnx-int8 --workers 1 2 --requests 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.onnx_encoder import BACKENDS  # noqa: E402

QUERIES = [
    "PWM이 뭐야?", "강압 컨버터 원리", "MOSFET 게이트 구동 회로", "ADC와 DAC의 차이", "NTC 서미스터 특성",
    "I2C 풀업 저항 값", "디커플링 커패시터 배치", "유효전력과 무효전력", "RS-485 종단 저항", "LDO 드롭아웃 전압",
    "EMI 필터 설계", "SPI 클록 극성", "TVS 다이오드 선정", "3상 유도전동기 슬립", "PLL 루프 필터",
]  # fmt: skip


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children in MiB (Linux /proc)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(k) for k in kids] + [g for k in kids for g in _children(int(k))]


def post(url: str, body: dict) -> tuple[int, float]:
    data = json.dumps(body).encode()
    started = time.perf_counter()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = 0  # connection error
    return status, time.perf_counter() - started


@dataclass
class Run:
    """One backend's load test (latencies in seconds, RSS in MiB)."""

    latencies: list[float]
    statuses: Counter
    elapsed: float
    peak_rss: float
    cold_start: float
    max_status: int
    max_latency: float

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def with_onnx(model: Path, work: Path) -> Path:
    """``model`` when it has ONNX variants, else a folder of links to its files with them exported inside."""
    if (model / "onnx" / "encoder.json").is_file():
        return model
    from src.export import main as export_main

    folder = work / model.name
    shutil.copytree(model, folder, copy_function=lambda s, d: Path(d).symlink_to(Path(s).resolve()))
    if export_main(["--model", str(folder)]) != 0:
        raise SystemExit(f"export of {model} failed")
    return folder


def load_test(model: Path, backend: str, workers: int, args: argparse.Namespace) -> Run:
    """Serve ``model`` with ``backend`` and ``workers`` server workers, load it, then stop the server."""
    root = Path(
        tempfile.mkdtemp(prefix="serve_load-")
    )  # <root>/<name>/<version>/<folder>, as azmlinfsrv lists it
    (root / "bge-m3-kr" / "1").mkdir(parents=True)
    (root / "bge-m3-kr" / "1" / "model").symlink_to(model.resolve())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = max(1, (os.cpu_count() or 1) // workers)  # the cores shared among the workers
    env = {**os.environ, "SCORE_MAX_TEXTS": "64", "SCORE_MAX_CHARS": "2000", "SCORE_BACKEND": backend,
           "WORKER_COUNT": str(workers), "OMP_NUM_THREADS": str(threads)}  # fmt: skip
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("azmlinfsrv")), "--entry_script", str(ROOT / "src" / "score.py"),
         "--model_dir", str(root), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/score"
    try:
        while post(url, {"texts": ["준비"]})[0] != 200:
            if time.perf_counter() - started > 180:
                raise SystemExit(f"{backend}: server did not start within 180 s")
            time.sleep(0.05)
        cold_start = time.perf_counter() - started
        for _ in range(3 * workers):  # every worker has loaded its model and answered once
            post(url, {"texts": ["준비"]})

        peak = [rss_mb(server.pid)]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak.append(rss_mb(server.pid))
                time.sleep(0.2)

        results: list[tuple[int, float]] = []
        lock = threading.Lock()
        counter = iter(range(args.requests))
        deadline = time.perf_counter() + args.max_seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                body = {"texts": rng.sample(QUERIES, args.texts_per_request), "input_type": "query"}
                outcome = post(url, body)
                with lock:
                    results.append(outcome)

        threading.Thread(target=watch, daemon=True).start()
        load_started = time.perf_counter()
        clients = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        elapsed = time.perf_counter() - load_started
        longest = ("전력 변환 회로의 스위칭 손실과 도통 손실 " * 100)[:2000]
        max_status, max_latency = post(url, {"texts": [longest] * 64, "input_type": "passage"})
        stop.set()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root)
    return Run([lat for status, lat in results if status == 200], Counter(status for status, _ in results),
               elapsed, max(peak), cold_start, max_status, max_latency)  # fmt: skip


def quality(model: Path, backends: list[str], data: Path) -> dict[str, dict[str, float]]:
    """nDCG@10 of ``model`` per backend: {backend: {eval set: nDCG@10}} (src.evaluate, test part, no baseline)."""
    from src import evaluate

    rows = {}
    for backend in backends:
        with tempfile.TemporaryDirectory() as out:
            config = evaluate.parse_args(["--model", str(model), "--backend", backend, "--base_model", "none",
                                          "--test_data", str(data / "test.jsonl"), "--corpus", str(data / "corpus_test.jsonl"),
                                          "--sts", "", "--output_dir", out])  # fmt: skip
            metrics = evaluate.evaluate(config, [])
        tuned = metrics["roles"]["fine_tuned"]
        rows[backend] = {f"independent {key}": task["systems"][tuned]["ndcg@10"]
                         for key, task in metrics["independent"]["tasks"].items()}  # fmt: skip
        rows[backend]["synthetic test split"] = metrics["systems"][tuned]["ndcg@10"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="e5-small-offline", help="model folder (or e5-small-offline)")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=list(BACKENDS),
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="server worker counts to try (WORKER_COUNT)"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--texts_per_request", type=int, default=4)
    parser.add_argument("--max_seconds", type=float, default=600)
    parser.add_argument(
        "--quality", action="store_true", help="add nDCG@10 per backend (minutes per backend)"
    )
    parser.add_argument("--data", type=Path, default=Path("outputs/pipeline/data"),
                        help="folder with test.jsonl and corpus_test.jsonl for --quality (src.synth_data output)")  # fmt: skip
    args = parser.parse_args()

    from src.base_model import resolve_model

    work = Path(tempfile.mkdtemp(prefix="serve_load-model-"))
    try:
        model = with_onnx(Path(resolve_model(args.model)), work)
        runs = {(b, w): load_test(model, b, w, args) for w in args.workers for b in args.backends}
        scores = quality(model, args.backends, args.data) if args.quality else {}
    finally:
        shutil.rmtree(work)

    names = [b if len(args.workers) == 1 else f"{b} x{w}" for b, w in runs]
    base = runs.get(("torch", args.workers[0]))
    print(f"\nServing load test: azmlinfsrv + src/score.py, {Path(args.model).name}, {args.clients} clients, "
          f"{args.texts_per_request} queries per request, up to {args.requests} requests in {args.max_seconds:.0f} s, "
          f"127.0.0.1, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':<34}" + "".join(f"{n:>16}" for n in names))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:<34}" + "".join(f"{c:>16}" for c in cells))

    row(
        "requests answered",
        [str(len(r.latencies) + sum(n for st, n in r.statuses.items() if st != 200)) for r in runs.values()],
    )
    row("requests/s", [f"{len(r.latencies) / r.elapsed:.1f}" for r in runs.values()])
    if base:
        row(
            "  x PyTorch",
            [
                f"{(len(r.latencies) / r.elapsed) / (len(base.latencies) / base.elapsed):.2f}x"
                for r in runs.values()
            ],
        )
    row(
        "latency p50/p95/p99 (ms)",
        [f"{r.pct(50):.0f}/{r.pct(95):.0f}/{r.pct(99):.0f}" for r in runs.values()],
    )
    row(
        "errors by status",
        [str(dict((s, n) for s, n in r.statuses.items() if s != 200) or 0) for r in runs.values()],
    )
    row("server peak RSS (MiB)", [f"{r.peak_rss:.0f}" for r in runs.values()])
    if base:
        row("  / PyTorch", [f"{r.peak_rss / base.peak_rss:.2f}" for r in runs.values()])
    row("cold start (s)", [f"{r.cold_start:.1f}" for r in runs.values()])
    row("maximal request (64 x 2000 chars)", [f"{r.max_latency:.1f} s" + ("" if r.max_status == 200 else f" ({r.max_status})")
                                              for r in runs.values()])  # fmt: skip
    if scores:
        print("nDCG@10 (src.evaluate --backend, test part)")
        for key in scores[args.backends[0]]:
            row(f"  {key}", [f"{scores[b][key]:.4f}" for b, _ in runs])
        if "torch" in scores:
            row(
                "  largest loss vs PyTorch",
                [f"{max(scores['torch'][k] - scores[b][k] for k in scores[b]):+.4f}" for b, _ in runs],
            )


if __name__ == "__main__":
    main()
