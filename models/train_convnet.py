#!/usr/bin/env python3
"""Train the cnnrt reference ConvNet on sklearn's digits and export it to ONNX.

Regenerates (deterministically, on a given machine / torch build):
  models/convnet.onnx          opset 17, input "input" [batch,1,64,64], output "logits" [batch,10]
  models/digits_heldout.npz    held-out split (uint8 64x64 images, labels, indices, torch logits/preds)
  examples/digit-<d>.png       one correctly classified held-out 64x64 grayscale image per digit

PyTorch is needed only to run this script (retraining); cnnrt itself never needs it.
Usage (from the repository root or anywhere):
  /path/to/torch-venv/bin/python models/train_convnet.py

Preprocessing (identical at training time and at inference time in the runtime):
  1. each 8x8 digit (values 0..16) -> 8-bit grayscale: round(v * 255 / 16)
  2. PIL.Image.resize((64, 64), Image.BILINEAR)           (8x8 -> 64x64)
  3. x = uint8 / 255  (float32)
  4. x = (x - mean) / std   with scalar mean/std computed on the training split
     (rounded to 6 decimals; stored in the ONNX metadata "preprocess")
An exported 64x64 PNG, loaded with Pillow as "L", resized to 64x64 bilinear (a
no-op) and normalised the same way, gives exactly the training input.
"""
import io
import json
import os
import random
import sys
import time
import zipfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ONNX_PATH = os.path.join(HERE, "convnet.onnx")
NPZ_PATH = os.path.join(HERE, "digits_heldout.npz")
EXAMPLES_DIR = os.path.join(ROOT, "examples")

SEED = 0
SIZE = 64
EPOCHS = 20
BATCH = 64
LR = 1e-3
OPSET = 17


def set_determinism(seed=SEED):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


class ConvNet(nn.Module):
    def __init__(self, in_ch=1, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, 512), nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def digits_to_uint8_64(images8):
    """[n,8,8] float 0..16 -> [n,64,64] uint8 via 8-bit grayscale + PIL bilinear resize."""
    out = np.empty((len(images8), SIZE, SIZE), dtype=np.uint8)
    for i, im in enumerate(images8):
        u8 = np.clip(np.rint(im * 255.0 / 16.0), 0, 255).astype(np.uint8)
        out[i] = np.asarray(Image.fromarray(u8, mode="L").resize((SIZE, SIZE), Image.BILINEAR))
    return out


def normalize(u8, mean, std):
    """uint8 [...,64,64] -> float32, (x/255 - mean)/std computed in float32."""
    x = u8.astype(np.float32) / np.float32(255.0)
    return (x - np.float32(mean)) / np.float32(std)


def save_npz_deterministic(path, **arrays):
    """Like np.savez_compressed, but with fixed zip timestamps (byte-identical reruns)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


@torch.no_grad()
def predict(model, x, batch=256):
    model.eval()
    outs = [model(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy()


def main():
    set_determinism()
    t0 = time.time()

    digits = load_digits()
    labels_all = digits.target.astype(np.int64)
    u8_all = digits_to_uint8_64(digits.images)
    idx_all = np.arange(len(labels_all))
    idx_tr, idx_te = train_test_split(idx_all, test_size=0.25, stratify=labels_all, random_state=0)
    idx_te = np.sort(idx_te)  # held-out order = load_digits order
    idx_tr = np.sort(idx_tr)

    x01_tr = u8_all[idx_tr].astype(np.float64) / 255.0
    mean = round(float(x01_tr.mean()), 6)
    std = round(float(x01_tr.std()), 6)
    print(f"train={len(idx_tr)} test={len(idx_te)} mean={mean} std={std}")

    x_tr = normalize(u8_all[idx_tr], mean, std)[:, None]
    y_tr = labels_all[idx_tr]
    x_te = normalize(u8_all[idx_te], mean, std)[:, None]
    y_te = labels_all[idx_te]

    model = ConvNet()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    xt = torch.from_numpy(x_tr)
    yt = torch.from_numpy(y_tr)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        tot, n = 0.0, 0
        for i in range(0, len(perm), BATCH):
            b = perm[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[b]), yt[b])
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
            n += len(b)
        sched.step()
        acc = (predict(model, x_te).argmax(1) == y_te).mean()
        print(f"epoch {epoch + 1:2d}/{EPOCHS} loss {tot / n:.4f} held-out acc {acc * 100:.2f}% "
              f"({time.time() - t0:.0f}s)", flush=True)

    model.eval()
    logits = predict(model, x_te).astype(np.float32)
    pred = logits.argmax(1).astype(np.int64)
    correct = int((pred == y_te).sum())
    acc = correct / len(y_te)
    print(f"final held-out accuracy: {correct}/{len(y_te)} = {acc * 100:.2f}%")

    # ---- ONNX export (TorchScript exporter, opset 17, dynamic batch) ----
    import onnx
    dummy = torch.from_numpy(x_te[:1])
    torch.onnx.export(
        model, (dummy,), ONNX_PATH, dynamo=False, opset_version=OPSET,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True, export_params=True,
    )
    m = onnx.load(ONNX_PATH)
    preprocess = {"size": [SIZE, SIZE], "channels": 1, "color": "L", "resize": "bilinear",
                  "scale": 1.0 / 255.0, "mean": [mean], "std": [std], "layout": "NCHW"}
    meta = {
        "labels": json.dumps([str(d) for d in range(10)]),
        "preprocess": json.dumps(preprocess),
        "task": "classification",
        "dataset": "sklearn digits (load_digits), upscaled 8x8 -> 64x64",
        "test_accuracy": f"{acc:.4f}",
        "trained_with": f"torch {torch.__version__}",
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.doc_string = ("cnnrt reference ConvNet: 4x(Conv3x3+ReLU+MaxPool2) + Linear(2048,512)+ReLU+Linear(512,10); "
                    "digit classifier trained on sklearn load_digits upscaled to 64x64 grayscale. "
                    "Input 'input' [batch,1,64,64] float32 normalised per metadata 'preprocess'; "
                    "output 'logits' [batch,10].")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, ONNX_PATH)
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"exported {ONNX_PATH} ({os.path.getsize(ONNX_PATH)} bytes), opset {OPSET}, ops {ops}")
    for k, v in meta.items():
        print(f"  metadata {k} = {v}")

    # ---- held-out split ----
    save_npz_deterministic(
        NPZ_PATH,
        images_uint8=u8_all[idx_te],
        labels=y_te.astype(np.int64),
        indices=idx_te.astype(np.int64),
        torch_logits=logits,
        torch_pred=pred,
    )
    print(f"saved {NPZ_PATH} ({os.path.getsize(NPZ_PATH)} bytes)")

    # ---- example PNGs: first correctly classified held-out image of each digit ----
    os.makedirs(EXAMPLES_DIR, exist_ok=True)
    for d in range(10):
        j = int(np.flatnonzero((y_te == d) & (pred == d))[0])
        path = os.path.join(EXAMPLES_DIR, f"digit-{d}.png")
        Image.fromarray(u8_all[idx_te[j]], mode="L").save(path, optimize=False)
        # round-trip check: PNG -> "L" -> resize 64x64 bilinear -> normalise == training input
        img = Image.open(path).convert("L").resize((SIZE, SIZE), Image.BILINEAR)
        assert np.array_equal(normalize(np.asarray(img), mean, std), x_te[j, 0])
        print(f"  {path}: held-out #{j} (load_digits index {idx_te[j]})")

    print(f"done in {time.time() - t0:.0f}s; verify with onnxruntime: python3 models/verify_convnet.py")


if __name__ == "__main__":
    sys.exit(main())
