"""A vectorized ``Conv`` for ``onnx.reference.ReferenceEvaluator``, whose own loops over the
output positions take minutes per image (docs/using_the_model.md); every other operator
stays the evaluator's. ``tests/test_export_onnx.py`` checks it against the evaluator's own.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun


class Conv(OpRun):
    """ONNX ``Conv`` with explicit pads (``auto_pad`` NOTSET, as MXNet's exporter writes)."""

    op_domain = ""

    def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None,
             kernel_shape=None, pads=None, strides=None):
        if auto_pad not in (None, "NOTSET", b"NOTSET"):
            raise ValueError(f"Conv with auto_pad={auto_pad!r}: only explicit pads "
                             "(auto_pad NOTSET, what MXNet's exporter writes) are evaluated here")
        spatial = X.ndim - 2
        kernel = W.shape[2:]
        if kernel_shape is not None and tuple(kernel_shape) != tuple(kernel):
            raise ValueError(f"kernel_shape {kernel_shape} does not match W {W.shape}")
        dilations = tuple(dilations or (1,) * spatial)
        strides = tuple(strides or (1,) * spatial)
        pads = tuple(pads or (0,) * (2 * spatial))
        group = int(group or 1)
        padded = np.pad(X, [(0, 0), (0, 0)] + [(pads[i], pads[i + spatial])
                                               for i in range(spatial)])
        extent = [dilations[i] * (kernel[i] - 1) + 1 for i in range(spatial)]
        windows = np.lib.stride_tricks.sliding_window_view(
            padded, extent, axis=tuple(range(2, 2 + spatial)))
        # (N, C, out..., kernel...): every stride-th window, every dilation-th tap of it
        windows = windows[(slice(None), slice(None),
                           *(slice(None, None, s) for s in strides),
                           *(slice(None, None, d) for d in dilations))]
        in_group, out_group = X.shape[1] // group, W.shape[0] // group
        window_axes = [1, *range(2 + spatial, 2 + 2 * spatial)]
        weight_axes = list(range(1, 2 + spatial))
        outputs = []
        for g in range(group):
            y = np.tensordot(windows[:, g * in_group:(g + 1) * in_group],
                             W[g * out_group:(g + 1) * out_group],
                             axes=(window_axes, weight_axes))        # (N, out..., M)
            outputs.append(np.moveaxis(y, -1, 1))
        y = outputs[0] if group == 1 else np.concatenate(outputs, axis=1)
        if B is not None:
            y = y + B.reshape((1, -1) + (1,) * spatial)
        return (y.astype(X.dtype, copy=False),)


NEW_OPS = [Conv]
