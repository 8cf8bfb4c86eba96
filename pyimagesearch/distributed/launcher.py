"""Start an MXNet parameter-server job (scheduler, servers, workers) and supervise it.

The mxnet wheel lacks the tracker of MXNet's ``tools/launch.py``; the engine itself only
needs each process started with its role and the scheduler's address in the environment
(``DMLC_ROLE``, ``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``,
``DMLC_NUM_WORKER``). A process whose role is ``scheduler`` or ``server`` runs its loop
while ``import mxnet`` executes and exits when the job ends, so
``python -c "import mxnet"`` is the whole scheduler and server program.

Locally (no hosts file) every process is a child of the launcher bound to loopback; with
a hosts file each runs on its machine through an ssh command. Either way the launcher:

- prefixes every line a process prints with its role and slot (``[worker 0]``);
- forwards SIGINT/SIGTERM/SIGHUP: workers first, so a training script can finish its step
  while the servers still answer, then the scheduler and servers, then SIGKILL for what
  is left after the grace period;
- stops the whole job when any process exits non-zero or is killed, and reports it with
  its last lines. ps-lite has no failure detection of its own (heartbeats are off by
  default): when a worker dies the others block in their next push/pull forever, so the
  launcher, which sees the death as a child's exit, is what ends the job;
- bounds the job with a timeout, and leaves no process behind: each child leads its own
  process group (signalled as a whole), dies with the launcher (``PR_SET_PDEATHSIG`` on
  Linux), and a remote command dies when its ssh connection closes.

Before anything starts, the launcher refuses a train command that would not use a ``dist_*``
kvstore (each worker would train alone, all into one folder: :func:`check_kvstore`) and a
scheduler port already in use (:func:`check_scheduler_port`), each in one line.

Worker slots are the launcher's numbering. The kvstore rank (``kv.rank``, which decides
who writes checkpoints and which part of the data a worker reads) is assigned by the
scheduler at start-up and need not equal the slot.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import logging
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pyimagesearch.errors import EXIT_TIMEOUT, ProjectError
from pyimagesearch.runtime import describe_returncode

logger = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------------------
# Hosts
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Host:
    """One machine of a hosts file.

    ``target`` is what the ssh command is given (``gpu-a``, ``me@10.0.0.2``); ``slots`` is
    how many workers it may run; ``address`` is the IP address the other machines reach it
    at (ps-lite binds to it, so it must be an address of one of the machine's interfaces).
    """

    target: str
    slots: int = 1
    address: str = ""


def parse_hosts(text: str, source: str = "hosts file") -> list[Host]:
    """Hosts from the text of a hosts file: one ``TARGET [slots=N] [address=IP]`` a line.

    ``#`` starts a comment; blank lines are skipped. Addresses are not resolved here.
    """
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


# ----------------------------------------------------------------------------------------
# The plan: which process runs what, where, with which environment
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessSpec:
    """One process of the job: ``command`` runs on ``host`` (None: here) with ``env`` added
    to its environment. ``argv`` is what the launcher runs here: ``command`` itself, or
    for a remote process the ssh command that runs it there."""

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
    placed, used = [], [0] * len(hosts)
    while len(placed) < workers:
        for i, host in enumerate(hosts):
            if used[i] < host.slots and len(placed) < workers:
                placed.append(host)
                used[i] += 1
    return placed


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

    Without ``hosts``, all run here on loopback (``port`` defaults to a free one). With
    ``hosts``, the scheduler runs on the first host, servers go one per host in turn
    (default: one per host), workers one per host in turn up to each host's slots, and
    ``port`` defaults to 9091. The scheduler listens on ``port``, every other process on
    its own port after it (``PORT`` variable): the ports to open are ``port`` ..
    ``port + S + N``.
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
        root = hosts[0].address or resolve_address(hosts[0]).address
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
        argv = command if role == "worker" else server_argv
        variables = {**common, "DMLC_ROLE": role}
        if role != "scheduler":
            # ps-lite binds a server or worker to an ephemeral port unless PORT says which
            # (if that one is taken, to a random one). Ascending ports also make the ranks
            # the scheduler assigns on one machine follow the slots: it orders nodes by
            # address, then port.
            address = LOOPBACK if host is None else (host.address
                                                     or resolve_address(host).address)
            variables.update(DMLC_NODE_HOST=address, PORT=str(port + number))
        variables = {**variables, **extra}
        if host is None:
            specs.append(ProcessSpec(role, slot, tuple(argv), variables, None, tuple(argv)))
            continue
        remote = remote_command(argv, variables, workdir, grace)
        specs.append(ProcessSpec(role, slot, tuple(argv), variables, host,
                                 (*ssh, host.target, remote)))
    return specs


# ----------------------------------------------------------------------------------------
# Checks before anything starts
# ----------------------------------------------------------------------------------------

def _option_value(command: Sequence[str], name: str) -> str | None:
    """The value of the last ``NAME VALUE`` or ``NAME=VALUE`` in ``command``."""
    value = None
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            value = command[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def _default_config(script: Path) -> str | None:
    """The config a train script of this project reads without ``--config``: the
    ``default_config="..."`` it hands to the training core (the script is read, not run)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "default_config" \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node.value.value
    return None


def check_kvstore(command: Sequence[str], workers: int, workdir: str | None = None) -> None:
    """Refuse a train command that would not join the parameter server.

    Every worker runs the command: with a local kvstore (``device``, ``local``, ``nccl``)
    each would train a model of its own, all of them into one checkpoint folder. The
    kvstore is the command's ``--kvstore``, else its config's ``KVSTORE`` (``--config``,
    else the script's default config). A command that is none of this project's train
    scripts (no ``--kvstore``, no ``--config``, no default config) runs unchecked.
    """
    alone = (f"each of the {workers} workers would train a model of its own, all of them "
             f"into one checkpoint folder")
    given = _option_value(command, "--kvstore")
    if given is not None:
        if not given.startswith("dist_"):
            raise LaunchError(f"the train command has --kvstore {given}: {alone}; give "
                              f"--kvstore dist_sync (or dist_device_sync, dist_async)")
        return
    base = Path(workdir or os.getcwd())
    spec = _option_value(command, "--config")
    script = next((Path(arg) for arg in command if arg.endswith(".py")), None)
    if spec is None and script is not None:
        spec = _default_config(script if script.is_absolute() else base / script)
    if spec is None:
        return
    if (spec.endswith(".py") or "/" in spec) and not Path(spec).is_absolute():
        spec = str(base / spec)
    from pyimagesearch.config import ConfigError, load_config

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


# ----------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------

@dataclass
class ProcessResult:
    """How one process ended. ``returncode`` is negative for a signal (as in subprocess);
    ``stopped`` says the launcher stopped it; ``output`` holds its last lines."""

    label: str
    role: str
    slot: int
    host: str | None
    pid: int | None
    returncode: int | None
    stopped: bool
    output: list[str]

    @property
    def status(self) -> str:
        return describe_returncode(self.returncode, self.host is not None)


@dataclass
class LaunchResult:
    """The job's outcome: ``finished`` (every worker exited 0), ``failed``, ``timeout``
    or ``interrupted``; ``returncode`` is what the launcher exits with."""

    returncode: int
    outcome: str
    message: str
    processes: list[ProcessResult]
    seconds: float
    failed: str | None = None          # label of the process that ended the job

    def process(self, label: str) -> ProcessResult:
        for result in self.processes:
            if result.label == label:
                return result
        raise KeyError(f"no process {label!r}; there are "
                       f"{', '.join(p.label for p in self.processes)}")

    @property
    def workers(self) -> list[ProcessResult]:
        return [p for p in self.processes if p.role == "worker"]


# ----------------------------------------------------------------------------------------
# Supervision
# ----------------------------------------------------------------------------------------

def _die_with_parent_function():
    """A preexec function that makes a child get SIGKILL when the launcher dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, pr_set_pdeathsig = os.getpid(), 1

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL))
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os._exit(1)
    return die_with_parent


class _Child:
    """One running process: its group, its output reader and the tail of its output."""

    def __init__(self, spec: ProcessSpec, keep_lines: int) -> None:
        self.spec = spec
        self.lines: deque[str] = deque(maxlen=keep_lines)
        self.popen: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.stopped = False

    def start(self, base_env: Mapping[str, str], workdir: str | None) -> None:
        env = dict(base_env) if self.spec.remote else {**base_env, **self.spec.env}
        try:
            self.popen = subprocess.Popen(
                list(self.spec.argv), cwd=None if self.spec.remote else workdir, env=env,
                stdin=subprocess.PIPE if self.spec.remote else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent_function())
        except OSError as exc:
            raise LaunchError(f"cannot start {self.spec.label} ({self.spec.argv[0]}): "
                              f"{exc}") from exc

    def start_reader(self, echo: IO[str] | None, lock: threading.Lock) -> None:
        self.reader = threading.Thread(target=self._read, args=(echo, lock), daemon=True,
                                       name=f"output of {self.spec.label}")
        self.reader.start()

    def _read(self, echo: IO[str] | None, lock: threading.Lock) -> None:
        prefix = f"[{self.spec.label}] "
        assert self.popen is not None and self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            if echo is not None:
                with lock:
                    try:
                        echo.write(prefix + line + "\n")
                        echo.flush()
                    except (OSError, ValueError):  # closed or broken stream: keep reading
                        echo = None
        self.popen.stdout.close()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def poll(self) -> int | None:
        if self.popen is None:
            return None
        code = self.popen.poll()
        if code is not None and self.popen.stdin:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        return code

    @property
    def running(self) -> bool:
        return self.popen is not None and self.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signum)

    def stop(self, signum: int) -> None:
        """Ask the process to stop: ``signum`` to its group, or for a remote process, close
        its stdin (its watchdog sends SIGTERM there)."""
        if not self.running:
            return
        self.stopped = True
        if self.spec.remote:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        else:
            self.signal_group(signum)

    def kill(self) -> None:
        if self.running:
            self.stopped = True
        # Also after the leader exited: a grandchild may still hold the group. The group id
        # cannot be reused while any member lives.
        self.signal_group(signal.SIGKILL)

    def finish_output(self, seconds: float) -> None:
        if self.reader is not None:
            self.reader.join(seconds)

    def result(self) -> ProcessResult:
        host = self.spec.host.target if self.spec.host else None
        return ProcessResult(self.spec.label, self.spec.role, self.spec.slot, host, self.pid,
                             self.poll(), self.stopped, list(self.lines))


class _Signals:
    """Records SIGINT/SIGTERM/SIGHUP for the supervision loop (main thread only)."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None


@contextlib.contextmanager
def _catch_signals() -> Iterator[_Signals]:
    caught = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    signals = [signal.SIGINT, signal.SIGTERM]
    # A launcher started under nohup keeps ignoring hang-ups.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signals.append(signal.SIGHUP)
    previous = {signum: signal.signal(signum, caught) for signum in signals}
    try:
        yield caught
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(children: Sequence[_Child], seconds: float, caught: _Signals,
          signals_seen: int) -> bool:
    """Wait until ``children`` have exited or ``seconds`` passed; False at once if a further
    signal came (the user insists: no more waiting)."""
    deadline = time.monotonic() + seconds
    while any(c.running for c in children) and time.monotonic() < deadline:
        if len(caught.received) > signals_seen:
            return False
        time.sleep(0.05)
    return len(caught.received) <= signals_seen


def _shutdown(children: Sequence[_Child], grace: float, caught: _Signals,
              worker_signal: int, servers_may_finish: bool) -> None:
    """Stop every process still running: the workers first (they may finish their step
    while the servers still answer), then scheduler and servers, then SIGKILL for the rest.
    A further signal to the launcher skips the waiting."""
    seen = len(caught.received)
    workers = [c for c in children if c.spec.role == "worker" and c.running]
    others = [c for c in children if c.spec.role != "worker"]
    patient = True
    if workers:
        logger.info("stopping %s (%s)", ", ".join(c.spec.label for c in workers),
                    signal.Signals(worker_signal).name)
        for child in workers:
            child.stop(worker_signal)
        patient = _wait(workers, grace, caught, seen)
    if patient and servers_may_finish:  # after a clean end they leave within a second
        patient = _wait(others, grace, caught, seen)
    if patient and any(c.running for c in others):
        for child in others:
            child.stop(signal.SIGTERM)
        # A local server dies at once on SIGTERM; a remote one needs its watchdog.
        remote = any(c.spec.remote for c in others)
        patient = _wait(others, grace if remote else min(grace, 5.0), caught, seen)
    left = [c for c in children if c.running]
    if left:
        logger.warning("killing %s (%s)", ", ".join(c.spec.label for c in left),
                       "still running after the grace period" if patient
                       else "a second signal came")
    for child in children:
        child.kill()
    _wait(children, 5.0, caught, len(caught.received) + 1)


def _failure_message(child: _Child, elapsed: float, tail: int) -> str:
    spec, code = child.spec, child.poll()
    where = f" on {spec.host.target}" if spec.host else ""
    lines = list(child.lines)[-tail:]
    text = (f"{spec.label} (pid {child.pid}{where}) failed after {elapsed:.1f} s: "
            f"{describe_returncode(code, spec.remote)}; the job was stopped.")
    if spec.role == "scheduler" and any("bind failed" in line for line in lines):
        text = (f"the scheduler could not listen on port {spec.env['DMLC_PS_ROOT_PORT']} of "
                f"{spec.env['DMLC_PS_ROOT_URI']} (ps-lite: bind failed): the port is in use "
                f"or the address is not one of that host's; pick another --port. " + text)
    if spec.role != "worker":
        text += (" A failed scheduler or server leaves the workers waiting forever, "
                 "so they were stopped too.")
    if lines:
        text += f"\nLast {len(lines)} lines of {spec.label}:\n" + "\n".join(
            f"    {line}" for line in lines)
    else:
        text += f"\n{spec.label} printed nothing."
    return text


def _exit_code(returncode: int) -> int:
    return returncode if returncode > 0 else 128 + (-returncode)


@dataclass
class _Verdict:
    """Why the supervision loop ended."""

    outcome: str = "finished"
    returncode: int = 0
    message: str = ""
    failed: _Child | None = None
    worker_signal: int = signal.SIGTERM


def _watch(children: Sequence[_Child], caught: _Signals, started: float,
           timeout: float | None, tail_lines: int) -> _Verdict:
    """Poll the processes until every worker exited 0, one failed, a signal or the timeout."""
    workers = [c for c in children if c.spec.role == "worker"]
    while True:
        elapsed = time.monotonic() - started
        if caught.first is not None:
            name = signal.Signals(caught.first).name
            # The train scripts stop cleanly on SIGINT and SIGTERM; a hang-up becomes SIGTERM.
            forward = signal.SIGTERM if caught.first == signal.SIGHUP else caught.first
            return _Verdict("interrupted", 128 + caught.first,
                            f"{name} received after {elapsed:.1f} s: the job was stopped",
                            worker_signal=forward)
        if timeout is not None and elapsed > timeout:
            running = ", ".join(c.spec.label for c in children if c.running)
            return _Verdict("timeout", EXIT_TIMEOUT,
                            f"the job ran past its timeout of {timeout:g} s and was stopped "
                            f"(still running: {running})")
        dead = [c for c in children if c.poll() not in (None, 0)]
        if dead:
            child = next((c for c in dead if c.spec.role == "worker"), dead[0])
            logger.error("%s %s: stopping the job", child.spec.label,
                         describe_returncode(child.poll(), child.spec.remote))
            child.finish_output(2.0)
            return _Verdict("failed", _exit_code(child.poll()),
                            _failure_message(child, elapsed, tail_lines), child)
        if all(c.poll() == 0 for c in workers):
            return _Verdict(message=f"all {len(workers)} workers finished after "
                                    f"{elapsed:.1f} s")
        time.sleep(0.1)


def launch(command: Sequence[str], workers: int, servers: int | None = None, *,
           hosts: Sequence[Host] | None = None, port: int | None = None,
           timeout: float | None = None, grace: float = DEFAULT_GRACE,
           env: Mapping[str, str] | None = None, workdir: str | None = None,
           ssh_command: str = DEFAULT_SSH, server_command: Sequence[str] | None = None,
           echo: bool = True, keep_lines: int = 1000, tail_lines: int = 30) -> LaunchResult:
    """Run ``command`` on ``workers`` workers of a parameter-server job; wait for it to end.

    See :func:`plan_job` for where processes run. ``echo`` streams every line prefixed
    with its process's label to stdout; each process's last ``keep_lines`` lines are kept
    in the result. When a process fails, the job times out (``timeout`` seconds) or the
    launcher receives SIGINT/SIGTERM/SIGHUP, everything is stopped: workers first (the
    signal received, else SIGTERM), then scheduler and servers (SIGTERM), SIGKILL after
    ``grace`` seconds. Raises :class:`LaunchError` when the job cannot be started (a train
    command without a ``dist_*`` kvstore, a scheduler port in use, ...).
    """
    check_kvstore(command, workers, workdir)
    specs = plan_job(command, workers, servers, hosts=hosts, port=port, env=env,
                     workdir=workdir, ssh_command=ssh_command, server_command=server_command,
                     grace=grace)
    check_scheduler_port(specs[0].env["DMLC_PS_ROOT_URI"],
                         int(specs[0].env["DMLC_PS_ROOT_PORT"]), local=not hosts)
    base_env = {k: v for k, v in os.environ.items() if k != "DMLC_RANK"}
    children = [_Child(spec, keep_lines) for spec in specs]
    started = time.monotonic()
    with _catch_signals() as caught:
        try:
            # Every process is forked before any reader thread runs (preexec_fn and
            # threads do not mix well).
            for child in children:
                child.start(base_env, workdir)
        except LaunchError:
            _shutdown(children, 0.0, caught, signal.SIGTERM, False)
            raise
        lock = threading.Lock()
        for child in children:
            child.start_reader(sys.stdout if echo else None, lock)
        servers = sum(s.role == "server" for s in specs)
        logger.info("started 1 scheduler, %d server%s and %d worker%s %s; scheduler at %s:%s",
                    servers, "s"[:servers != 1], workers, "s"[:workers != 1],
                    f"on {len(hosts)} hosts" if hosts else "on this machine",
                    specs[0].env["DMLC_PS_ROOT_URI"], specs[0].env["DMLC_PS_ROOT_PORT"])
        verdict = _watch(children, caught, started, timeout, tail_lines)
        _shutdown(children, grace, caught, verdict.worker_signal,
                  servers_may_finish=verdict.outcome == "finished")
    for child in children:
        child.finish_output(2.0)
    results = [c.result() for c in children]
    logger.info("exit status: %s", "; ".join(
        f"{r.label} {r.status}{' (stopped by the launcher)' if r.stopped else ''}"
        for r in results))
    if verdict.outcome == "finished":
        logger.info("%s", verdict.message)
    else:
        logger.error("%s", verdict.message)
    return LaunchResult(verdict.returncode, verdict.outcome, verdict.message, results,
                        time.monotonic() - started,
                        verdict.failed.spec.label if verdict.failed else None)


__all__ = ["Host", "LaunchError", "LaunchResult", "ProcessResult", "ProcessSpec",
           "check_kvstore", "check_scheduler_port", "launch", "parse_hosts",
           "plan_job", "read_hosts", "remote_command"]
