"""cnnrt's exceptions. Every error a user can cause says what is wrong and where (node name and op, input name)."""


class CnnrtError(Exception):
    """Base class of cnnrt's errors."""


class ModelError(CnnrtError, ValueError):
    """The model is malformed: it cannot be parsed, fails the checks, or a node's attributes/shapes are invalid."""


class UnsupportedModelError(ModelError):
    """The model uses operators (or forms of them) that cnnrt does not implement. `unsupported` lists
    (node name, op type, reason) for every one, all at once."""

    def __init__(self, unsupported):
        self.unsupported = list(unsupported)
        lines = [f"  node {name!r} ({op}): {why}" for name, op, why in self.unsupported]
        super().__init__(f"the model uses {len(self.unsupported)} unsupported node(s):\n" + "\n".join(lines))


def node_error(node, msg):
    return ModelError(f"node {node.name!r} ({node.op}): {msg}")
