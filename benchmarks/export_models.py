#!/usr/bin/env python3
"""Export the model zoo cnnrt is tested and benchmarked on (torchvision architectures, RANDOM weights) to ONNX.

Nothing is downloaded: every model is built with weights=None and initialised from a fixed seed. BatchNorm layers
get random affine parameters (gamma, beta) and then their running statistics are *calibrated*: a few forward passes
in train mode on random input (momentum=None: exact average) so that running_mean/var are the real, non-trivial
per-channel statistics of the random network. That exercises BN folding for real (mean != 0, var != 1,
gamma != 1, beta != 0) while keeping activations well scaled through 50-100 layers in eval mode, so the logits
are meaningful numbers (not inf / 0) and top-1 comparisons mean something.

Run with the torch venv (cnnrt itself never needs torch):
  /opt/torchenv/bin/python benchmarks/export_models.py [--models resnet18,convnet3] [--opsets 17] [--force]

Writes benchmarks/models/<name>-op<opset>.onnx (git-ignored) with input "input" [batch,3,224,224] (the seed
ConvNet "convnet3": [batch,3,64,64]), output "logits", dynamic batch axis, TorchScript exporter (dynamo=False).
Existing files are skipped unless --force.
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT_DIR = os.path.join(HERE, "models")

SEED = 0
OPSETS = (11, 13, 17)
CALIB_BATCHES = 4
CALIB_BATCH = 8
CHECK_SEED = 1234


def _torchvision(name, **kw):
    import torchvision.models as tvm

    return lambda: getattr(tvm, name)(weights=None, **kw)


def _convnet3():
    # the ConvNet of models/train_convnet.py (imported, so the architecture cannot drift), with 3 input channels
    sys.path.insert(0, os.path.join(ROOT, "models"))
    try:
        from train_convnet import ConvNet
    finally:
        sys.path.pop(0)
    return ConvNet(in_ch=3, num_classes=10)


# name -> (constructor, input H/W, opsets)
MODELS = {
    "resnet18": (_torchvision("resnet18"), 224, OPSETS),
    "resnet50": (_torchvision("resnet50"), 224, OPSETS),
    "mobilenet_v2": (_torchvision("mobilenet_v2"), 224, OPSETS),
    "mobilenet_v3_large": (_torchvision("mobilenet_v3_large"), 224, OPSETS),
    "squeezenet1_1": (_torchvision("squeezenet1_1"), 224, OPSETS),
    "vgg16": (_torchvision("vgg16"), 224, OPSETS),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), 224, OPSETS),
    "googlenet": (_torchvision("googlenet", aux_logits=False, init_weights=True), 224, OPSETS),
    "densenet121": (_torchvision("densenet121"), 224, OPSETS),
    "shufflenet_v2_x1_0": (_torchvision("shufflenet_v2_x1_0"), 224, OPSETS),
    "convnet3": (_convnet3, 64, (17,)),
}


def check_input(size, batch=1):
    """The fixed random input of the zoo test (same generator as tests/test_zoo.py)."""
    return np.random.default_rng(CHECK_SEED).standard_normal((batch, 3, size, size), dtype=np.float32)


def out_path(name, opset):
    return os.path.join(OUT_DIR, f"{name}-op{opset}.onnx")


@torch.no_grad()
def build(name):
    """The model in eval mode, deterministic random weights, randomised + calibrated BatchNorm."""
    ctor, size, _ = MODELS[name]
    torch.manual_seed(SEED)
    model = ctor()
    g = torch.Generator().manual_seed(SEED + 1)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        if bn.affine:
            bn.weight.copy_(torch.empty_like(bn.weight).uniform_(0.5, 1.5, generator=g))
            bn.bias.copy_(torch.empty_like(bn.bias).normal_(0.0, 0.2, generator=g))
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    if bns:
        model.train()
        for _ in range(CALIB_BATCHES):
            model(torch.randn(CALIB_BATCH, 3, size, size, generator=g))
    model.eval()
    return model, size


def export(name, opset, model, size):
    path = out_path(name, opset)
    tmp = path + ".tmp"
    dummy = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(SEED + 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), tmp, dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True, export_params=True,
            # PRESERVE (the model is in eval mode, so eval semantics) instead of the default EVAL: EVAL runs the
            # exporter's eval peephole, which folds every BatchNormalization into the preceding Conv; we want the
            # BatchNormalization nodes in the file so that cnnrt's own BN folding is what gets tested.
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    import onnx

    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    p = m.metadata_props.add()
    p.key, p.value = "zoo", f"{name} random weights seed={SEED}, BN calibrated; torch {torch.__version__}"
    # PyTorch's own logits on the zoo's check input (tests/test_zoo.py regenerates it with numpy): lets the test
    # confirm the export itself (onnxruntime vs PyTorch) before it compares cnnrt with onnxruntime.
    with torch.no_grad():
        ref = model(torch.from_numpy(check_input(size))).numpy().ravel()
    p = m.metadata_props.add()
    p.key, p.value = "torch_logits", json.dumps([float(v) for v in ref])
    onnx.save(m, tmp)
    os.replace(tmp, path)
    ops = sorted({n.op_type for n in m.graph.node})
    return path, len(m.graph.node), ops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="", help="comma-separated subset of: " + ",".join(MODELS))
    ap.add_argument("--opsets", default="", help="comma-separated subset of 11,13,17")
    ap.add_argument("--force", action="store_true", help="re-export files that already exist")
    args = ap.parse_args(argv)

    names = [s for s in args.models.split(",") if s] or list(MODELS)
    bad = [n for n in names if n not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; known: {list(MODELS)}")
    opsets = [int(s) for s in args.opsets.split(",") if s] or list(OPSETS)

    torch.set_num_threads(2)
    os.makedirs(OUT_DIR, exist_ok=True)
    t_all = time.time()
    failures = []
    for name in names:
        todo = [o for o in MODELS[name][2] if o in opsets]
        pending = [o for o in todo if args.force or not os.path.exists(out_path(name, o))]
        for o in todo:
            if o not in pending:
                print(f"skip   {os.path.relpath(out_path(name, o), ROOT)} (exists)")
        if not pending:
            continue
        model, size = build(name)
        for o in pending:
            t0 = time.time()
            try:
                path, nnodes, ops = export(name, o, model, size)
            except Exception as e:  # record and go on: some architectures may need a newer opset
                msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                failures.append((name, o, msg))
                print(f"FAILED {name} opset {o}: {msg}")
                tmp = out_path(name, o) + ".tmp"
                if os.path.exists(tmp):
                    os.remove(tmp)
                continue
            print(f"wrote  {os.path.relpath(path, ROOT)}  {os.path.getsize(path) / 1e6:8.1f} MB  {nnodes:4d} nodes  "
                  f"{time.time() - t0:5.1f}s  ops {ops}", flush=True)
    files = [os.path.join(OUT_DIR, f) for f in os.listdir(OUT_DIR) if f.endswith(".onnx")]
    total = sum(os.path.getsize(f) for f in files)
    print(f"done in {time.time() - t_all:.0f}s; {len(files)} files in {os.path.relpath(OUT_DIR, ROOT)}/, "
          f"{total / 1e6:.0f} MB in all; {len(failures)} failed")
    for name, o, msg in failures:
        print(f"  failed: {name} opset {o}: {msg}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
