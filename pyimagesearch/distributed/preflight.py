"""What must hold before a job starts: a train command that joins the parameter server, and
a free scheduler port. Each refusal is one line."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.distributed.plan import LaunchError


def _option_value(command: Sequence[str], name: str) -> str | None:
    """The value of the last ``NAME VALUE`` or ``NAME=VALUE`` in ``command``."""
    value = None
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            value = command[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def check_kvstore(command: Sequence[str], workers: int, workdir: str | None = None) -> None:
    """Refuse a train command whose kvstore is not ``dist_*``: its ``--kvstore``, else the
    ``KVSTORE`` of the ``--config`` it names. With neither, the workers judge it: a train
    script started under the launcher refuses a local kvstore at once."""
    alone = (f"each of the {workers} workers would train a model of its own, all of them "
             f"into one checkpoint folder")
    given = _option_value(command, "--kvstore")
    if given is not None:
        if not given.startswith("dist_"):
            raise LaunchError(f"the train command has --kvstore {given}: {alone}; give "
                              f"--kvstore dist_sync (or dist_device_sync, dist_async)")
        return
    spec = _option_value(command, "--config")
    if spec is None:
        return
    # A path is the workers' own, relative to the folder they run in.
    if (spec.endswith(".py") or "/" in spec) and not Path(spec).is_absolute():
        spec = str(Path(workdir or os.getcwd()) / spec)
    try:
        config = load_config(spec)
    except ConfigError as exc:
        raise LaunchError(f"cannot read the train command's config to check its kvstore "
                          f"({exc}); give --kvstore dist_sync in the train command") from None
    if not config.KVSTORE.startswith("dist_"):
        raise LaunchError(f"{config.source}: KVSTORE = {config.KVSTORE!r} and the train "
                          f"command has no --kvstore: {alone}; add --kvstore dist_sync to "
                          f"the train command")


def check_scheduler_port(address: str, port: int, local: bool) -> None:
    """Refuse a scheduler port that something already uses; ps-lite would end the
    scheduler with "bind failed" at the bottom of a traceback."""
    advice = "pick another --port, or leave it out here for a free one"
    if local:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As ZeroMQ binds: a closed connection's TIME_WAIT does not count as in use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                raise LaunchError(f"port {port} on {address} is already in use "
                                  f"({exc.strerror or exc}), so the scheduler cannot listen "
                                  f"there; {advice}") from None
        return
    # On another machine: something that accepts a connection there already listens.
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=3):
        raise LaunchError(f"port {port} on {address} is already in use (something accepts "
                          f"connections there), so the scheduler cannot listen there; "
                          f"pick another --port")
