"""Batch inference over many images on Dask distributed (an optional extra: `pip install "cnnrt[dask]"`).

    from dask.distributed import Client, LocalCluster
    from cnnrt.distributed import classify_images
    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
        results = classify_images(client, "models/convnet.onnx", paths, batch=32)

The model travels to each worker once (as bytes, in a pickled Session); images are split into chunks of `batch`,
each chunk is preprocessed and run on one worker, and results come back in input order."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

_SESSIONS: Dict[int, object] = {}


def _classify_chunk(sess, paths: Sequence[str], top_k: int):
    from .image import Preprocess, labels_for, load_image, to_probabilities

    pre = Preprocess.for_session(sess)
    labels = labels_for(sess)
    x = np.stack([load_image(p, pre) for p in paths])
    probs = to_probabilities(sess.run(x)[0].reshape(len(paths), -1))
    out = []
    for p, row in zip(paths, probs):
        top = np.argsort(-row, kind="stable")[:top_k]
        out.append({"image": p, "top": [{"index": int(c), "label": labels[c] if labels else str(int(c)),
                                         "probability": float(row[c])} for c in top]})
    return out


def classify_images(client, model_path: str, paths: Sequence[str], batch: int = 32, top_k: int = 5,
                    threads_per_task: int = 1) -> List[dict]:
    """Classify `paths` on a dask.distributed `client`. Returns one dict per image, in order."""
    from .session import Session

    sess = Session(model_path, num_threads=threads_per_task)
    [fsess] = client.scatter([sess], broadcast=True)  # pickled once: model bytes + options, rebuilt per worker
    chunks = [list(paths[i:i + batch]) for i in range(0, len(paths), batch)]
    futures = client.map(_classify_chunk, [fsess] * len(chunks), chunks, [top_k] * len(chunks), pure=False)
    out = []
    for chunk in client.gather(futures):
        out.extend(chunk)
    return out


def classify_images_local(model_path: str, paths: Sequence[str], batch: int = 32, top_k: int = 5) -> List[dict]:
    """The same, in this process (the reference a distributed run must equal)."""
    from .session import Session

    sess = Session(model_path, num_threads=1)
    out = []
    for i in range(0, len(paths), batch):
        out.extend(_classify_chunk(sess, list(paths[i:i + batch]), top_k))
    return out
