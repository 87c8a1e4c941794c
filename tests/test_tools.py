"""`cnnrt bench|profile|inspect`, `cnnrt run` on folders/globs with batching and file output, and distributed batch
inference — all through subprocesses, as a user runs them."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLES, MODEL, ROOT


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cnnrt.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_run_folder_glob_batch_and_outputs(tmp_path):
    out_csv = tmp_path / "preds.csv"
    r = cli("run", MODEL, EXAMPLES, "--batch", "4", "--output", str(out_csv), "--top-k", "1")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 10
    for row in rows:
        assert os.path.basename(row["image"]) == f"digit-{row['label']}.png"
    assert "images/s" in r.stderr
    out_jsonl = tmp_path / "preds.jsonl"
    r = cli("run", MODEL, os.path.join(EXAMPLES, "digit-[1-3].png"), "--batch", "2", "--output", str(out_jsonl))
    assert r.returncode == 0, r.stderr
    objs = [json.loads(l) for l in open(out_jsonl)]
    assert [o["top"][0]["label"] for o in objs] == ["1", "2", "3"]


def test_run_batch_equals_single(tmp_path):
    a = cli("run", MODEL, EXAMPLES, "--json", "--batch", "1")
    b = cli("run", MODEL, EXAMPLES, "--json", "--batch", "7")
    assert a.returncode == b.returncode == 0
    pa = [json.loads(l) for l in a.stdout.splitlines()]
    pb = [json.loads(l) for l in b.stdout.splitlines()]
    assert [p["image"] for p in pa] == [p["image"] for p in pb]
    for x, y in zip(pa, pb):
        assert [t["label"] for t in x["top"]] == [t["label"] for t in y["top"]]
        assert abs(x["top"][0]["probability"] - y["top"][0]["probability"]) < 1e-5


def test_bench_compare():
    pytest.importorskip("onnxruntime")
    r = cli("bench", MODEL, "--threads", "1", "--runs", "5", "--compare", "onnxruntime", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert set(res["results"]) == {"cnnrt", "onnxruntime"}
    assert res["ratio_cnnrt_over_onnxruntime"] > 0
    assert res["gflop"] == pytest.approx(0.139, rel=0.05)  # 2*MACs of 4 convs + 2 FCs at 1x64x64
    assert res["results"]["cnnrt"]["runs"] >= 5
    r = cli("bench", MODEL, "--threads", "1", "--runs", "3")
    assert r.returncode == 0 and "median ms" in r.stdout


def test_profile_table_and_trace(tmp_path):
    trace = tmp_path / "t.json"
    r = cli("profile", MODEL, "--threads", "1", "--runs", "3", "--trace", str(trace))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("Conv" in l and ("gemm" in l or "winograd" in l or "direct" in l or "depthwise" in l) for l in lines)
    ev = json.load(open(trace))["traceEvents"]
    # one complete event per C node of the plan (4 convs with their ReLU and MaxPool fused, 2 FCs), in order
    assert [e["name"] for e in ev] == ["/features/features.0/Conv", "/features/features.3/Conv",
                                       "/features/features.6/Conv", "/features/features.9/Conv",
                                       "/classifier/classifier.1/Gemm", "/classifier/classifier.3/Gemm"]
    assert all(e["ph"] == "X" and e["dur"] > 0 for e in ev)
    # the header's overhead figure is measured on the plain runs (fast path), not left out
    m = re.search(r"run ([0-9.]+) ms \(nodes ([0-9.]+) ms; outside the executor ([0-9.]+) us, ([0-9.]+)%\)", lines[0])
    assert m, lines[0]
    assert 0 < float(m.group(3)) < 1e3 * float(m.group(1))


def test_profile_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    r = cli("profile", MODEL, "--threads", "1", "--runs", "2", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 1000


def test_inspect():
    r = cli("inspect", MODEL, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["nodes_before"] == 16 and res["nodes_after"] < 16
    assert res["parameters"] == 1313226
    assert res["unsupported_ops"] == []
    assert json.loads(res["metadata"]["labels"])[7] == "7"
    r = cli("inspect", MODEL)
    assert "planned peak" in r.stdout


def test_distributed_dask_equals_single_process():
    pytest.importorskip("dask.distributed")
    code = f"""
import json, glob, sys
sys.path.insert(0, {ROOT!r})
from dask.distributed import Client, LocalCluster
from cnnrt.distributed import classify_images, classify_images_local
paths = sorted(glob.glob({os.path.join(EXAMPLES, '*.png')!r})) * 3
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, Client(c) as cl:
    dist = classify_images(cl, {MODEL!r}, paths, batch=4)
    workers = len(cl.scheduler_info()["workers"])
local = classify_images_local({MODEL!r}, paths, batch=4)
print(json.dumps({{"same": [d["top"][0]["label"] for d in dist] == [l["top"][0]["label"] for l in local],
                   "maxdiff": max(abs(d["top"][0]["probability"] - l["top"][0]["probability"])
                                  for d, l in zip(dist, local)), "n": len(dist), "workers": workers}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["n"] == 30 and res["workers"] == 2
    assert res["same"] and res["maxdiff"] < 1e-6
