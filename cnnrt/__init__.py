"""cnnrt: a CPU inference runtime for convolutional neural networks."""
from ._core import cpu_info, set_isa  # noqa: F401
from .errors import CnnrtError, ModelError, UnsupportedModelError  # noqa: F401
from .session import InferenceSession, NodeArg, Session, SessionOptions, TensorInfo  # noqa: F401

__version__ = "0.1.0"
__all__ = ["Session", "InferenceSession", "SessionOptions", "cpu_info", "set_isa", "CnnrtError", "ModelError",
           "UnsupportedModelError", "__version__"]
