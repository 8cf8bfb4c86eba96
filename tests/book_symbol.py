"""The ImageNet Bundle's symbolic GoogLeNet (the chapter's ``MxGoogLeNet``), in ``mx.sym``.

Restated from the chapter's layer table, independently of ``pyimagesearch.nn.googlenet``, so
the tests that load its checkpoints do not trust the module's copy. Every convolution is
``conv_module``: ``mx.sym.Convolution`` (bias on, MXNet's default) => ``mx.sym.BatchNorm``
(MXNet's symbolic defaults: fixed gamma, eps 1e-3, momentum 0.9) => ReLU.
"""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np

# (name, kind, numbers): conv (filters, kernel, stride, pad); pool (kernel, stride, pad);
# inception (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
CHAPTER_TABLE = (
    ("conv1_1", "conv", (64, 7, 2, 3)),
    ("pool1", "max", (3, 2, 1)),
    ("conv1_2", "conv", (64, 1, 1, 0)),
    ("conv1_3", "conv", (192, 3, 1, 1)),
    ("pool2", "max", (3, 2, 1)),
    ("in3a", "inception", (64, 96, 128, 16, 32, 32)),
    ("in3b", "inception", (128, 128, 192, 32, 96, 64)),
    ("pool3", "max", (3, 2, 1)),
    ("in4a", "inception", (192, 96, 208, 16, 48, 64)),
    ("in4b", "inception", (160, 112, 224, 24, 64, 64)),
    ("in4c", "inception", (128, 128, 256, 24, 64, 64)),
    ("in4d", "inception", (112, 144, 288, 32, 64, 64)),
    ("in4e", "inception", (256, 160, 320, 32, 128, 128)),
    ("pool4", "max", (3, 2, 1)),
    ("in5a", "inception", (256, 160, 320, 32, 128, 128)),
    ("in5b", "inception", (384, 192, 384, 48, 128, 128)),
    ("pool5", "avg", (7, 1, 0)),
    ("do", "dropout", (0.4,)),
)
BOOK_INPUT = 224  # the book's crop; pool5 (7x7/1) needs the 7x7 map it gives


def conv_module(data: mx.sym.Symbol, filters: int, kernel: int, stride: int = 1,
                pad: int = 0) -> mx.sym.Symbol:
    conv = mx.sym.Convolution(data=data, kernel=(kernel, kernel), num_filter=filters,
                              pad=(pad, pad), stride=(stride, stride))
    bn = mx.sym.BatchNorm(data=conv)
    return mx.sym.Activation(data=bn, act_type="relu")


def inception_module(data: mx.sym.Symbol, n1x1: int, r3x3: int, n3x3: int, r5x5: int,
                     n5x5: int, proj: int) -> mx.sym.Symbol:
    branch_1x1 = conv_module(data, n1x1, 1)
    branch_3x3 = conv_module(conv_module(data, r3x3, 1), n3x3, 3, pad=1)
    branch_5x5 = conv_module(conv_module(data, r5x5, 1), n5x5, 5, pad=2)
    pool = mx.sym.Pooling(data=data, pool_type="max", pad=(1, 1), kernel=(3, 3),
                          stride=(1, 1))
    return mx.sym.Concat(branch_1x1, branch_3x3, branch_5x5, conv_module(pool, proj, 1))


def book_symbol(classes: int, table: tuple = CHAPTER_TABLE) -> mx.sym.Symbol:
    """``MxGoogLeNet.build(classes)``: the network with its SoftmaxOutput head."""
    x = mx.sym.Variable("data")
    for _, kind, numbers in table:
        if kind == "conv":
            x = conv_module(x, *numbers)
        elif kind in ("max", "avg"):
            kernel, stride, pad = numbers
            x = mx.sym.Pooling(data=x, pool_type=kind, kernel=(kernel, kernel),
                               stride=(stride, stride), pad=(pad, pad))
        elif kind == "inception":
            x = inception_module(x, *numbers)
        else:
            x = mx.sym.Dropout(data=x, p=numbers[0])
    fc = mx.sym.FullyConnected(data=mx.sym.Flatten(data=x), num_hidden=classes)
    return mx.sym.SoftmaxOutput(data=fc, name="softmax")


def save_book_checkpoint(folder: Path, prefix: str, epoch: int, classes: int,
                         table: tuple = CHAPTER_TABLE, seed: int = 0) -> mx.sym.Symbol:
    """Initialize the book's symbol in a ``Module`` and save it with ``Module.save_checkpoint``.

    BatchNorm's moving statistics, beta and (fixed, so ignored) gamma are set to random
    values, so that a loader that drops or swaps any of them changes the logits.
    """
    symbol = book_symbol(classes, table)
    module = mx.mod.Module(symbol, context=mx.cpu())
    module.bind(data_shapes=[("data", (1, 3, BOOK_INPUT, BOOK_INPUT))],
                label_shapes=[("softmax_label", (1,))], for_training=False)
    mx.random.seed(seed)
    module.init_params(mx.init.Xavier(magnitude=2))
    args, auxs = module.get_params()
    rng = np.random.RandomState(seed)
    for name, array in list(args.items()) + list(auxs.items()):
        if name.endswith(("_gamma", "_beta", "_moving_mean", "_bias")):
            args_or_aux = args if name in args else auxs
            args_or_aux[name] = mx.nd.array(rng.uniform(-0.5, 0.5, array.shape))
        elif name.endswith("_moving_var"):
            auxs[name] = mx.nd.array(rng.uniform(0.5, 1.5, array.shape))
    module.set_params(args, auxs)
    folder.mkdir(parents=True, exist_ok=True)
    module.save_checkpoint(str(folder / prefix), epoch)
    return symbol


def module_logits(folder: Path, prefix: str, epoch: int, images: np.ndarray) -> np.ndarray:
    """What MXNet's ``Module`` computes from the saved checkpoint: the classifier's output."""
    symbol, args, auxs = mx.model.load_checkpoint(str(folder / prefix), epoch)
    logits = symbol.get_children()[0]  # SoftmaxOutput's input: the FullyConnected layer
    module = mx.mod.Module(logits, label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", images.shape)], for_training=False)
    module.set_params(args, auxs)
    module.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    return module.get_outputs()[0].asnumpy()
