"""The `cnnrt` command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np


def _floats(s):
    return [float(v) for v in s.split(",") if v.strip()]


def _size(s):
    parts = [int(v) for v in s.lower().replace("x", ",").split(",") if v.strip()]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"bad size {s!r}: use H,W or HxW")
    return parts


def build_parser():
    p = argparse.ArgumentParser(prog="cnnrt", description="cnnrt: CNN inference on the CPU")
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="classify images with an ONNX model")
    r.add_argument("model", help="ONNX model file")
    r.add_argument("images", nargs="+", help="image files")
    r.add_argument("--top-k", type=int, default=5, help="how many classes to print (default 5)")
    r.add_argument("--json", action="store_true", help="print one JSON object per image")
    r.add_argument("--threads", type=int, default=None, help="threads for inference (default: all CPUs)")
    r.add_argument("--size", type=_size, default=None, help="resize to H,W (default: from the model)")
    r.add_argument("--mean", type=_floats, default=None, help="per-channel mean, e.g. 0.485,0.456,0.406")
    r.add_argument("--std", type=_floats, default=None, help="per-channel std")
    r.add_argument("--scale", type=float, default=None, help="pixel scale before mean/std (default 1/255)")
    r.add_argument("--color", choices=["RGB", "BGR", "L"], default=None, help="color mode fed to the model")
    i = sub.add_parser("info", help="show the CPU features and the kernel path cnnrt uses")
    del i
    return p


def _cmd_run(args) -> int:
    from .image import ImageError, Preprocess, labels_for, load_image, to_probabilities
    from .session import Session

    if args.top_k <= 0:
        raise ValueError("--top-k must be positive")
    if args.threads is not None and args.threads <= 0:
        raise ValueError("--threads must be positive")
    sess = Session(args.model, num_threads=args.threads)
    if len(sess.inputs) != 1:
        raise ValueError(f"the model has {len(sess.inputs)} inputs; `cnnrt run` feeds one image input")
    pre = Preprocess.for_session(sess).override(args.size, args.mean, args.std, args.scale, args.color)
    labels = labels_for(sess)
    shape = sess.inputs[0].shape
    if len(shape) != 4:
        raise ValueError(f"the model's input {sess.inputs[0].name!r} has shape {shape}, not an image batch (N,C,H,W)")
    status = 0
    for path in args.images:
        try:
            x = load_image(path, pre)[None]
        except ImageError as e:
            print(f"cnnrt: error: {e}", file=sys.stderr)
            status = 1
            continue
        out = sess.run(x)[0]
        probs = to_probabilities(out.reshape(out.shape[0], -1))[0]
        k = min(args.top_k, probs.size)
        top = np.argsort(-probs, kind="stable")[:k]
        rows = [{"index": int(c), "label": labels[c] if labels and c < len(labels) else str(int(c)),
                 "probability": float(probs[c])} for c in top]
        if args.json:
            print(json.dumps({"image": path, "top": rows}))
        else:
            print(f"{path}: {rows[0]['label']} ({rows[0]['probability'] * 100:.2f}%)")
            for rank, row in enumerate(rows, 1):
                print(f"  {rank}. {row['label']:<20s} {row['probability']:.4f}")
    return status


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    try:
        if args.cmd == "run":
            return _cmd_run(args)
        if args.cmd == "info":
            from . import cpu_info

            for k, v in cpu_info().items():
                print(f"{k}: {v}")
            return 0
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, TypeError, MemoryError) as e:
        msg = str(e).strip().splitlines()
        print(f"cnnrt: error: {' / '.join(m.strip() for m in msg) if msg else type(e).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
