"""A tiny ``dist_sync`` training job for the launcher's tests (run by each worker).

    python tests/dist_worker_script.py OUT_DIR [--steps N]

Each worker trains a small Gluon network on its own random data (seeded by its kvstore
rank) with ``update_on_kvstore=False``, so gradients are summed on the servers and every
worker applies the same SGD update, then writes ``OUT_DIR/worker-<rank>.json``: the rank,
the losses and the final parameters. The environment drives the faults the tests need:

- ``DIST_TEST_DIE_AFTER=K`` and ``DIST_TEST_DIE_RANK=R``: the worker of rank R kills
  itself with SIGKILL after step K (``DIST_TEST_DIE_HOW=exit`` exits 3 instead);
- ``DIST_TEST_STEP_SLEEP=S``: sleep S seconds after each step (a job long enough to be
  interrupted);
- SIGINT/SIGTERM set a flag checked between steps (as the train scripts do): the worker
  prints ``stopping on SIGTERM`` and exits 128 + the signal number. A worker blocked in a
  push/pull never gets there; the launcher has to kill it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)

    import mxnet as mx
    import numpy as np
    from mxnet import autograd, gluon

    kv = mx.kv.create("dist_sync")
    rank, workers = kv.rank, kv.num_workers
    print(f"kvstore rank {rank} of {workers} workers", flush=True)

    mx.random.seed(0)  # identical initial weights on every worker
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(8, in_units=4, activation="tanh"), gluon.nn.Dense(1, in_units=8))
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1},
                            kvstore=kv, update_on_kvstore=False)
    loss_fn = gluon.loss.L2Loss()
    # Gluon broadcasts the initial weights inside the first step(), and the engine may send
    # that step's gradient push before the broadcast's pull: a worker then pulls the summed
    # gradients as its weights (about one run in three diverges). Finish the broadcast first.
    trainer._init_kvstore()
    trainer._init_params()
    mx.nd.waitall()

    # Worker-specific data from one shared linear target, so the summed gradient is
    # a real descent direction for everyone.
    rng = np.random.RandomState(100 + rank)
    x = rng.randn(32, 4).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")).astype("float32")
    data, label = mx.nd.array(x), mx.nd.array(y)

    stop: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: stop.append(number))

    die_after = int(os.environ.get("DIST_TEST_DIE_AFTER", "-1"))
    die_rank = int(os.environ.get("DIST_TEST_DIE_RANK", "-1"))
    sleep = float(os.environ.get("DIST_TEST_STEP_SLEEP", "0"))
    losses = []
    for step in range(args.steps):
        with autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(len(x) * workers)
        losses.append(float(loss.mean().asscalar()))
        print(f"step {step} loss {losses[-1]:.6f}", flush=True)
        if step == die_after and rank == die_rank:
            print("dying on purpose", flush=True)
            if os.environ.get("DIST_TEST_DIE_HOW") == "exit":
                return 3
            os.kill(os.getpid(), signal.SIGKILL)
        if sleep:
            time.sleep(sleep)
        if stop:
            print(f"stopping on {signal.Signals(stop[0]).name}", flush=True)
            return 128 + stop[0]

    params = {name: p.data().asnumpy().ravel().tolist()
              for name, p in net.collect_params().items()}
    out = Path(args.out_dir) / f"worker-{rank}.json"
    out.write_text(json.dumps({"rank": rank, "losses": losses, "params": params}),
                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
