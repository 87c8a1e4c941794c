#!/usr/bin/env python3
"""Print the model-zoo table (cnnrt vs onnxruntime on every exported model) as markdown.

  PYTHONPATH=. python3 benchmarks/zoo_report.py [--models resnet18,...] [--opsets 17] [--json out.json]

Per model and opset: loads in cnnrt (or the error), max |cnnrt - ort|, that diff relative to max|ort|,
top-1 agreement, onnxruntime vs PyTorch (export sanity), nodes before/after cnnrt's graph optimization, and the
planned peak arena bytes. The tolerance and its reasoning are in benchmarks/zoo.py (the test is tests/test_zoo.py).
Models come from benchmarks/export_models.py (run it first with the torch venv).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="")
    ap.add_argument("--opsets", default="")
    ap.add_argument("--threads", type=int, default=zoo.THREADS)
    ap.add_argument("--json", default=None, help="also write the records here")
    args = ap.parse_args(argv)
    names = {s for s in args.models.split(",") if s}
    opsets = {int(s) for s in args.opsets.split(",") if s}
    files = [f for f in zoo.zoo_files() if (not names or f[0] in names) and (not opsets or f[1] in opsets)]
    if not files:
        print(f"no exported models in {zoo.MODELS_DIR}: run /opt/torchenv/bin/python benchmarks/export_models.py",
              file=sys.stderr)
        return 1
    records = []
    for name, opset, path in files:
        r = zoo.check_model(name, opset, path, threads=args.threads)
        records.append(r)
        res = "; ".join(f"b{b}: rel {v['rel']:.1e} top1 {v['top1']}" for b, v in r["results"].items())
        print(f"{name}-op{opset}: {'ok' if r['ok'] else 'FAIL'} {res} {zoo.short_error(r['error'])}", file=sys.stderr,
              flush=True)
    print(zoo.markdown_table(records))
    failed = [r for r in records if not r["ok"]]
    if failed:
        print("\nFailures:\n")
        for r in failed:
            print(f"- {r['model']}-op{r['opset']}: {zoo.short_error(r['error'], 4) or 'mismatch'}")
            for d in r.get("node") or []:
                print(f"  - {d}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "traceback"} for r in records], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
