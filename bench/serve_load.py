"""Load test of src/score.py behind the real Azure ML inference server, on this machine only.

Starts ``azmlinfsrv`` with the offline stand-in (laid out as Azure mounts a registered model), then N
concurrent clients send a fixed number of realistic Korean query requests to 127.0.0.1, bounded in
time. Prints requests/s, p50/p95/p99 latency, errors by status and the server's peak RSS, plus the
latency of one maximal request (SCORE_MAX_TEXTS texts of SCORE_MAX_CHARS characters), which sizes
the deployment's request timeout.

    uv run python bench/serve_load.py                      # 8 clients, 1000 requests
    uv run python bench/serve_load.py --clients 4 --requests 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--texts_per_request", type=int, default=4)
    parser.add_argument("--max_seconds", type=float, default=600)
    args = parser.parse_args()

    from src.base_model import resolve_model

    root = Path(
        tempfile.mkdtemp(prefix="serve_load-")
    )  # <root>/<name>/<version>/<folder>, as azmlinfsrv lists it
    (root / "e5-small-offline" / "1").mkdir(parents=True)
    (root / "e5-small-offline" / "1" / "model").symlink_to(Path(resolve_model("e5-small-offline")).resolve())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SCORE_MAX_TEXTS": "64", "SCORE_MAX_CHARS": "2000"}
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
                raise SystemExit("server did not start within 180 s")
            time.sleep(0.2)
        cold_start = time.perf_counter() - started

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
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - load_started
        longest = ("전력 변환 회로의 스위칭 손실과 도통 손실 " * 100)[:2000]
        max_status, max_latency = post(url, {"texts": [longest] * 64, "input_type": "passage"})
        stop.set()
    finally:
        server.terminate()
        server.wait(timeout=30)

    latencies = sorted(latency for status, latency in results if status == 200)
    statuses = Counter(status for status, _ in results)

    def pct(p: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
            if latencies
            else float("nan")
        )

    print(f"\nServing load test: azmlinfsrv + src/score.py, stand-in e5-small, {args.clients} clients, "
          f"{args.texts_per_request} queries per request, 127.0.0.1")  # fmt: skip
    print(f"{'requests':<28}{len(results)}")
    print(f"{'requests/s':<28}{len(results) / elapsed:.1f}")
    print(f"{'latency p50/p95/p99 (ms)':<28}{pct(50):.0f} / {pct(95):.0f} / {pct(99):.0f}")
    print(f"{'errors by status':<28}{dict((s, n) for s, n in statuses.items() if s != 200) or 0}")
    print(f"{'server peak RSS (MiB)':<28}{max(peak):.0f}")
    print(f"{'cold start (s)':<28}{cold_start:.1f}")
    print(f"{'maximal request (64 x 2000 chars)':<28} status {max_status}, {1000 * max_latency:.0f} ms")


if __name__ == "__main__":
    main()
