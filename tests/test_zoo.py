"""The model zoo: torchvision architectures with random weights (benchmarks/export_models.py, opsets 11/13/17) and
the seed ConvNet at 3x64x64, each run by cnnrt and by onnxruntime on a fixed random input (batch 1; batch 1 and 2
for resnet18). Skipped as a whole when benchmarks/models/ holds no exported model (CI has no torch to export them).

Tolerance (see benchmarks/zoo.py): max|cnnrt - ort| <= 1e-3 * max|ort| and the same top-1 class. Deep networks
accumulate float32 reordering error layer by layer (~50-100 layers x a few ulp relative each, amplified a little by
residual sums and folded BatchNorm scales) to ~1e-5..1e-4 of the output scale; 1e-3 of the output scale is far
below what a wrong kernel (a wrong tap, a lost bias, a mis-folded BN) produces, which is O(1) of the scale.
"""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import zoo  # noqa: E402

FILES = zoo.zoo_files()
if not FILES:
    pytest.skip(f"no exported models in {zoo.MODELS_DIR} (run benchmarks/export_models.py with torch)",
                allow_module_level=True)
pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name,opset,path", FILES, ids=[f"{n}-op{o}" for n, o, _ in FILES])
def test_zoo_model_matches_onnxruntime(name, opset, path):
    r = zoo.check_model(name, opset, path)
    assert r["loads"], f"{name} opset {opset} does not load: {r['error']} {r.get('node') or ''}"
    assert r["error"] is None, f"{name} opset {opset}: {r['error']} {r.get('node') or ''}"
    for batch, res in r["results"].items():
        assert res["finite"], f"batch {batch}: non-finite outputs"
        assert res["rel"] <= zoo.RTOL, (f"batch {batch}: max|cnnrt-ort| = {res['max_abs']:.3g} = {res['rel']:.3g} "
                                        f"of max|ort| = {res['scale']:.3g} (tolerance {zoo.RTOL})")
        assert res["top1"] != "NO", f"batch {batch}: top-1 differs"
