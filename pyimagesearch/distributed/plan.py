"""The plan of a parameter-server job, before anything starts: the hosts file, where each
process runs, its DMLC environment and port, and its command line here or over ssh."""

from __future__ import annotations

import math
import os
import re
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyimagesearch.errors import ProjectError

DEFAULT_SSH = "ssh -o BatchMode=yes"
DEFAULT_REMOTE_PORT = 9091
DEFAULT_GRACE = 10.0
LOOPBACK = "127.0.0.1"
# Set by the launcher for every process; ``DMLC_RANK`` must stay unset: ps-lite only learns
# its node id from the scheduler when it is absent.
RESERVED_ENV = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER",
                "DMLC_NUM_WORKER", "DMLC_NODE_HOST", "DMLC_RANK")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class LaunchError(ProjectError):
    """The job cannot be started as asked (bad hosts file, option, or command)."""


@dataclass(frozen=True)
class Host:
    """One machine of a hosts file: ``target`` for the ssh command, how many worker
    ``slots`` it has, and the ``address`` the others reach it at (ps-lite binds to it)."""

    target: str
    slots: int = 1
    address: str = ""


def parse_hosts(text: str, source: str = "hosts file") -> list[Host]:
    """Hosts from one ``TARGET [slots=N] [address=IP]`` a line (``#`` comments); addresses
    are not resolved here."""
    hosts = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        target, options = words[0], {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in ("slots", "address") or not value:
                raise LaunchError(f"{source}, line {number}: {word!r} is not slots=N or "
                                  f"address=IP (a line is: TARGET [slots=N] [address=IP])")
            options[key] = value
        try:
            slots = int(options.get("slots", "1"))
        except ValueError:
            slots = 0
        if slots < 1:
            raise LaunchError(f"{source}, line {number}: slots must be a positive integer, "
                              f"not {options['slots']!r}")
        hosts.append(Host(target, slots, options.get("address", "")))
    if not hosts:
        raise LaunchError(f"{source} names no host")
    return hosts


def resolve_address(host: Host) -> Host:
    """``host`` with its address filled in from its name, as this machine resolves it."""
    if host.address:
        return host
    name = host.target.rsplit("@", 1)[-1]
    try:
        address = socket.gethostbyname(name)
    except OSError as exc:
        raise LaunchError(f"cannot resolve host {name!r} ({exc}); give its IP address in "
                          f"the hosts file: {host.target} address=IP") from exc
    return Host(host.target, host.slots, address)


def read_hosts(path: str | Path) -> list[Host]:
    """The hosts of a hosts file, each with its address resolved."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LaunchError(f"cannot read the hosts file {path}: {exc}") from exc
    return [resolve_address(host) for host in parse_hosts(text, f"hosts file {path}")]


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the job: ``command`` runs on ``host`` (None: here) with ``env`` added
    to its environment; ``argv`` is what runs here (``command``, or the ssh command)."""

    role: str
    slot: int
    command: tuple[str, ...]
    env: Mapping[str, str]
    host: Host | None = None
    argv: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.role if self.role == "scheduler" else f"{self.role} {self.slot}"

    @property
    def remote(self) -> bool:
        return self.host is not None

    def describe(self) -> str:
        """What this process runs, as a shell line (for ``--dry-run``)."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        line = f"{exports} {shlex.join(self.command)}"
        if self.remote:
            ssh = shlex.join(self.argv[:-2])
            return f"{ssh} {self.argv[-2]} (under a watchdog, in the workdir): {line}"
        return line


# The remote side of a process, in bash (job control gives the command and the watchdog
# process groups of their own, whatever started the shell): run the command in the
# background and watch the ssh connection's stdin; when it closes (the launcher stopped
# the job, died, or lost the connection), SIGTERM the command's process group, and
# SIGKILL it after the grace period. The shell reports the command's exit status, and on
# its way out stops the watchdog and whatever the command left in its group.
_REMOTE_SCRIPT = """\
cd {workdir} || {{ echo "cannot cd to" {workdir} "on $(uname -n)" >&2; exit 126; }}
{exports}set -m
exec 3<&0 </dev/null
{command} &
child=$!
(
  while IFS= read -r _ <&3; do :; done
  kill -TERM -"$child"
  n=0
  while kill -0 -"$child" && [ "$n" -lt {grace} ]; do sleep 1; n=$((n + 1)); done
  kill -KILL -"$child"
) >/dev/null 2>&1 &
watchdog=$!
exec 3<&- 2>/dev/null
wait "$child"
status=$?
kill -KILL -"$watchdog"
wait "$watchdog"
kill -TERM -"$child"
exit "$status"
"""


def remote_command(argv: Sequence[str], env: Mapping[str, str], workdir: str,
                   grace: float) -> str:
    """The command line ssh runs on the remote host for ``argv`` (the remote login shell
    reads it; the script runs in bash)."""
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    script = _REMOTE_SCRIPT.format(workdir=shlex.quote(workdir),
                                   exports=exports, command=shlex.join(argv),
                                   grace=max(1, math.ceil(grace)))
    return "exec bash -c " + shlex.quote(script)


def server_command_for(command: Sequence[str], remote: bool) -> list[str]:
    """The scheduler's and servers' program: ``import mxnet`` in the training interpreter
    (the train command's first word when it is a Python, else this interpreter here or
    ``python3`` on a remote host)."""
    python = command[0]
    if not Path(python).name.startswith("python"):
        python = "python3" if remote else sys.executable
    return [python, "-c", "import mxnet"]


def place_workers(hosts: Sequence[Host], workers: int) -> list[Host]:
    """Host of each worker slot: one per host in turn, as far as each host's slots go."""
    capacity = sum(h.slots for h in hosts)
    if workers > capacity:
        raise LaunchError(f"{workers} workers do not fit the hosts file's {capacity} slots "
                          f"(add slots=N to its lines)")
    rounds = range(max(h.slots for h in hosts))
    return [host for turn in rounds for host in hosts if turn < host.slots][:workers]


def free_port(address: str = LOOPBACK) -> int:
    """A TCP port free on ``address`` now (the scheduler binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _check_env(env: Mapping[str, str]) -> dict[str, str]:
    for key in env:
        if not _ENV_NAME.match(key):
            raise LaunchError(f"--env {key!r}: not an environment variable name")
        if key in RESERVED_ENV:
            raise LaunchError(f"--env {key}: the launcher sets the DMLC variables itself "
                              f"({', '.join(RESERVED_ENV[:-1])}; DMLC_RANK must stay unset)")
    return {str(k): str(v) for k, v in env.items()}


def plan_job(command: Sequence[str], workers: int, servers: int | None = None, *,
             hosts: Sequence[Host] | None = None, port: int | None = None,
             env: Mapping[str, str] | None = None, workdir: str | None = None,
             ssh_command: str = DEFAULT_SSH, server_command: Sequence[str] | None = None,
             grace: float = DEFAULT_GRACE) -> list[ProcessSpec]:
    """Every process of the job: the scheduler, then the servers, then the workers.

    Without ``hosts`` all run here on loopback (``port``: a free one). With ``hosts`` the
    scheduler runs on the first host, servers one per host in turn (default: one per
    host), workers one per host in turn up to its slots (``port``: 9091). The k-th other
    process listens on ``port + k``.
    """
    command = list(command)
    if not command:
        raise LaunchError("no train command given (put it after --)")
    if workers < 1:
        raise LaunchError("--workers must be at least 1")
    if servers is None:
        servers = len(hosts) if hosts else 1
    if servers < 1:
        raise LaunchError("--servers must be at least 1")
    extra = _check_env(env or {})
    workdir = str(workdir or os.getcwd())
    if hosts:
        port = DEFAULT_REMOTE_PORT if port is None else port
        root = resolve_address(hosts[0]).address
    else:
        port = free_port() if port is None else port
        root = LOOPBACK
    if not 0 < port < 65536 - servers - workers:
        raise LaunchError(f"--port {port} leaves no room for the ports of {servers} servers "
                          f"and {workers} workers after it")
    server_argv = list(server_command or server_command_for(command, bool(hosts)))
    common = {"DMLC_PS_ROOT_URI": root, "DMLC_PS_ROOT_PORT": str(port),
              "DMLC_NUM_SERVER": str(servers), "DMLC_NUM_WORKER": str(workers)}

    slots: list[tuple[str, int, Host | None]] = [("scheduler", 0, hosts[0] if hosts else None)]
    slots += [("server", i, hosts[i % len(hosts)] if hosts else None) for i in range(servers)]
    worker_hosts = place_workers(hosts, workers) if hosts else [None] * workers
    slots += [("worker", i, host) for i, host in enumerate(worker_hosts)]

    ssh = shlex.split(ssh_command)
    specs = []
    for number, (role, slot, host) in enumerate(slots):
        argv = tuple(command if role == "worker" else server_argv)
        variables = {**common, "DMLC_ROLE": role}
        if role != "scheduler":
            # ps-lite binds a server or worker to an ephemeral port unless PORT says which
            # (if that one is taken, to a random one). Ascending ports also make the ranks
            # the scheduler assigns on one machine follow the slots: it orders nodes by
            # address, then port.
            address = LOOPBACK if host is None else resolve_address(host).address
            variables.update(DMLC_NODE_HOST=address, PORT=str(port + number))
        variables = {**variables, **extra}
        if host is not None:
            remote = remote_command(argv, variables, workdir, grace)
            specs.append(ProcessSpec(role, slot, argv, variables, host,
                                     (*ssh, host.target, remote)))
        else:
            specs.append(ProcessSpec(role, slot, argv, variables, None, argv))
    return specs
