"""A checkpoint leaves the training folder: ONNX export with a parity check, ONNX inference.
Here: what the export command needs before it imports onnx (its defaults, its error)."""

from pyimagesearch.errors import ProjectError

DEFAULT_TOLERANCE = 1e-4
DEFAULT_PARITY_IMAGES = 8
RUNTIMES = ("auto", "onnxruntime", "reference")


class ExportError(ProjectError, RuntimeError):
    """The checkpoint cannot be exported."""
