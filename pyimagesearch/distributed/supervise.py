"""Run a planned job and watch it: every process a child (here, or its ssh command), its
lines prefixed with its label, the whole job stopped in order when one process fails, the
timeout passes or a signal comes, and a verdict with the failed process's last lines."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from pyimagesearch.distributed.plan import (
    DEFAULT_GRACE,
    DEFAULT_SSH,
    Host,
    LaunchError,
    ProcessSpec,
    plan_job,
)
from pyimagesearch.distributed.preflight import check_kvstore, check_scheduler_port
from pyimagesearch.errors import EXIT_TIMEOUT
from pyimagesearch.runtime import describe_returncode

logger = logging.getLogger(__name__)


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
        # A remote process gets its DMLC variables from its ssh command line, not from here.
        remote = self.spec.remote
        try:
            self.popen = subprocess.Popen(
                list(self.spec.argv), cwd=None if remote else workdir,
                env=dict(base_env) if remote else {**base_env, **self.spec.env},
                stdin=subprocess.PIPE if remote else subprocess.DEVNULL,
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
        """``signum`` to its group; for a remote process, close its stdin (its watchdog
        sends SIGTERM there)."""
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


@contextlib.contextmanager
def _catch_signals() -> Iterator[list[int]]:
    """The SIGINT/SIGTERM/SIGHUP received meanwhile, in order (main thread only)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    signals = [signal.SIGINT, signal.SIGTERM]
    # A launcher started under nohup keeps ignoring hang-ups.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signals.append(signal.SIGHUP)
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in signals}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(children: Sequence[_Child], seconds: float, caught: list[int],
          signals_seen: int) -> bool:
    """Wait until ``children`` have exited or ``seconds`` passed; False at once if a further
    signal came (the user insists: no more waiting)."""
    deadline = time.monotonic() + seconds
    while any(c.running for c in children) and time.monotonic() < deadline:
        if len(caught) > signals_seen:
            return False
        time.sleep(0.05)
    return len(caught) <= signals_seen


def _shutdown(children: Sequence[_Child], grace: float, caught: list[int],
              worker_signal: int, servers_may_finish: bool) -> None:
    """Stop what still runs: the workers first (they may finish their step while the
    servers still answer), then scheduler and servers, then SIGKILL for the rest."""
    seen = len(caught)
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
    _wait(children, 5.0, caught, len(caught) + 1)


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


@dataclass
class _Verdict:
    """Why the supervision loop ended."""

    outcome: str = "finished"
    returncode: int = 0
    message: str = ""
    failed: _Child | None = None
    worker_signal: int = signal.SIGTERM


def _watch(children: Sequence[_Child], caught: list[int], started: float,
           timeout: float | None, tail_lines: int) -> _Verdict:
    """Poll the processes until every worker exited 0, one failed, a signal or the timeout."""
    workers = [c for c in children if c.spec.role == "worker"]
    while True:
        elapsed = time.monotonic() - started
        if caught:
            name = signal.Signals(caught[0]).name
            # The train scripts stop cleanly on SIGINT and SIGTERM; a hang-up becomes SIGTERM.
            forward = signal.SIGTERM if caught[0] == signal.SIGHUP else caught[0]
            return _Verdict("interrupted", 128 + caught[0],
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
            code = child.poll()
            logger.error("%s %s: stopping the job", child.spec.label,
                         describe_returncode(code, child.spec.remote))
            child.finish_output(2.0)
            return _Verdict("failed", code if code > 0 else 128 - code,
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

    Placement as :func:`plan_job` says. ``echo`` streams every line, prefixed with its
    process's label, to stdout; each process's last ``keep_lines`` lines are kept in the
    result. A failed process, the ``timeout`` or a signal stops the job (workers first,
    SIGKILL after ``grace`` seconds). :class:`LaunchError` when it cannot start.
    """
    check_kvstore(command, workers, workdir)
    specs = plan_job(command, workers, servers, hosts=hosts, port=port, env=env,
                     workdir=workdir, ssh_command=ssh_command, server_command=server_command,
                     grace=grace)
    root = specs[0].env["DMLC_PS_ROOT_URI"], specs[0].env["DMLC_PS_ROOT_PORT"]
    check_scheduler_port(root[0], int(root[1]), local=not hosts)
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
                    f"on {len(hosts)} hosts" if hosts else "on this machine", *root)
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
