"""A checkpoint leaves the training folder: ONNX export with a parity check, ONNX inference.

``onnx_export`` converts a checkpoint through MXNet's own exporter and refuses to keep a
file whose outputs differ from MXNet's; ``runtime`` runs the file with onnxruntime when
it is installed (``requirements-export.txt``) or with ONNX's reference evaluator, which
``reference_ops`` makes fast enough for whole networks.
"""
