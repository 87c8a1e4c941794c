"""Image loading and preprocessing as a model's metadata describes it (flags may override every field)."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence

import numpy as np

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
MAX_PIXELS = 64_000_000  # refuse larger images (decompression bombs) with a clear error


class ImageError(ValueError):
    """An image could not be read or converted."""


@dataclass
class Preprocess:
    size: Optional[List[int]] = None  # [H, W]
    channels: int = 3
    color: str = "RGB"  # "RGB", "BGR" or "L"
    resize: str = "bilinear"
    scale: float = 1.0 / 255.0
    mean: List[float] = field(default_factory=lambda: [0.0])
    std: List[float] = field(default_factory=lambda: [1.0])
    layout: str = "NCHW"

    @classmethod
    def for_session(cls, sess) -> "Preprocess":
        """From the model's metadata ('preprocess' JSON); otherwise defaults from the input's shape."""
        meta = sess.metadata.get("preprocess")
        shape = sess.inputs[0].shape
        channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 3
        size = [shape[2], shape[3]] if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]) \
            else None
        if meta:
            try:
                m = json.loads(meta)
            except ValueError:
                raise ImageError("the model's 'preprocess' metadata is not valid JSON") from None
            p = cls(size=list(m.get("size", size or [224, 224])), channels=int(m.get("channels", channels)),
                    color=str(m.get("color", "L" if channels == 1 else "RGB")),
                    resize=str(m.get("resize", "bilinear")), scale=float(m.get("scale", 1.0 / 255.0)),
                    mean=[float(v) for v in m.get("mean", [0.0])], std=[float(v) for v in m.get("std", [1.0])],
                    layout=str(m.get("layout", "NCHW")))
            return p
        if channels == 3:
            return cls(size=size or [224, 224], channels=3, color="RGB", mean=list(IMAGENET_MEAN),
                       std=list(IMAGENET_STD))
        return cls(size=size or [224, 224], channels=channels, color="L" if channels == 1 else "RGB")

    def override(self, size=None, mean=None, std=None, scale=None, color=None) -> "Preprocess":
        p = replace(self)
        if size is not None:
            p.size = list(size)
        if mean is not None:
            p.mean = list(mean)
        if std is not None:
            p.std = list(std)
        if scale is not None:
            p.scale = float(scale)
        if color is not None:
            p.color = color
            p.channels = 1 if color == "L" else 3
        return p


_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def _to_mode(img, color):
    from PIL import Image

    mode = "L" if color == "L" else "RGB"
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(1.0, float(a.max()))
        img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))  # alpha composited over white
        img = Image.alpha_composite(bg, img)
    return img.convert(mode)


def load_image(path_or_image, p: Preprocess) -> np.ndarray:
    """Read an image (path, bytes-like file or PIL image) and return a float32 array [C, H, W]."""
    from PIL import Image

    if isinstance(path_or_image, (str, os.PathLike)):
        path = os.fspath(path_or_image)
        if not os.path.exists(path):
            raise ImageError(f"{path}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                old = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = MAX_PIXELS
                try:
                    with Image.open(path) as im:
                        im.load()
                        img = im.copy()
                finally:
                    Image.MAX_IMAGE_PIXELS = old
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{path}: image is too large (over {MAX_PIXELS} pixels)") from None
        except Exception as e:
            raise ImageError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from None
    else:
        img = path_or_image
    try:
        img = _to_mode(img, p.color)
        if p.size is not None:
            h, w = int(p.size[0]), int(p.size[1])
            if (img.height, img.width) != (h, w):
                img = img.resize((w, h), _RESAMPLE.get(p.resize, 2))
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"cannot convert the image: {e}") from None
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if p.color == "BGR":
        a = a[:, :, ::-1]
    a = a * np.float32(p.scale)
    mean = np.asarray(p.mean, np.float32).reshape(1, 1, -1)
    std = np.asarray(p.std, np.float32).reshape(1, 1, -1)
    a = (a - mean) / std
    if p.layout == "NCHW":
        a = a.transpose(2, 0, 1)
    return np.ascontiguousarray(a, dtype=np.float32)


def labels_for(sess) -> Optional[List[str]]:
    raw = sess.metadata.get("labels")
    if not raw:
        return None
    try:
        labels = json.loads(raw)
    except ValueError:
        labels = [s for s in raw.splitlines() if s]
    return [str(x) for x in labels]


def to_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax along the last axis, unless the row already is a probability distribution."""
    x = np.asarray(logits, np.float64)
    if x.size and x.min() >= 0 and x.max() <= 1 and np.allclose(x.sum(axis=-1), 1.0, atol=1e-3):
        return x
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)
