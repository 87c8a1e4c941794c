import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "convnet.onnx")
HELDOUT = os.path.join(ROOT, "models", "digits_heldout.npz")
EXAMPLES = os.path.join(ROOT, "examples")


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def model_path():
    return MODEL


@pytest.fixture(scope="session")
def heldout():
    return dict(np.load(HELDOUT))


def isas():
    import cnnrt

    return cnnrt.cpu_info()["supported_isas"]
