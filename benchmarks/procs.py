"""Child processes of the user-path benchmark: the `dagster` CLI, `dagster dev` and their helpers.

Each child runs in its own session (so its whole process tree, e.g. dagster dev's webserver, daemon, code
server and run workers, shares one process group), writes stdout and stderr to files (no pipe can fill up
and stall it), gets a timeout, and is always stopped: SIGINT to its group first (what Ctrl-C in a terminal
does, so dagster dev shuts its services down cleanly), then SIGKILL to the group and to every descendant
recorded before, by pid. A failing child raises `ProcessFailedError` quoting the end of its stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_S = 20.0  # dagster dev needs a few seconds to stop its webserver, daemon and code server


class ProcessFailedError(RuntimeError):
    """A child exited non-zero, timed out or never became ready; the message quotes its stderr."""


@dataclass
class Child:
    name: str
    cmd: list[str]
    proc: subprocess.Popen
    out: Path
    err: Path

    def why(self, lines: int = 40) -> str:
        """The end of its stderr (else stdout): what a failing user path prints."""
        text = tail(self.err, lines) or tail(self.out, lines)
        return f"{self.name}: {' '.join(self.cmd)}\n{text or '(no output)'}"


@dataclass(frozen=True)
class Timed:
    wall_s: float  # spawn to exit (perf_counter)
    spawned_at: float  # epoch seconds, comparable with Dagster's run record timestamps
    exited_at: float


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ("" if it is missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it; a tiny race is acceptable for a benchmark)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parent_pids() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = int(fields[1])
    return out


def descendants(pid: int, parents: Mapping[int, int] | None = None) -> list[int]:
    """Every process below `pid` (children, grandchildren, ...), breadth first."""
    parents = parent_pids() if parents is None else parents
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, []))
    while queue:
        p = queue.pop(0)
        found.append(p)
        queue.extend(children.get(p, []))
    return found


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(child: Child, grace_s: float = STOP_GRACE_S) -> None:
    """Stop the child and everything it started: SIGINT to its group, then SIGKILL after `grace_s`."""
    proc = child.proc
    tree = descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the group (a run worker, a code server)
    for pid in tree:  # and any that moved to a group of their own
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def spawned(name: str, cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path,
            grace_s: float = STOP_GRACE_S) -> Iterator[Child]:
    """Start `cmd` in its own session with output to `log_dir/name.{out,err}`; always stopped on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out, err = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(list(cmd), stdout=fo, stderr=fe, env=dict(env), cwd=cwd, start_new_session=True,
                                stdin=subprocess.DEVNULL)
    child = Child(name, list(cmd), proc, out, err)
    try:
        yield child
    finally:
        stop(child, grace_s)


def run_timed(name: str, cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path,
              timeout_s: float) -> Timed:
    """Run `cmd` to completion: wall time from spawn to exit. Non-zero exit or timeout raise with its stderr."""
    spawned_at, started = time.time(), time.perf_counter()
    with spawned(name, cmd, env=env, cwd=cwd, log_dir=log_dir) as child:
        try:
            code = child.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ProcessFailedError(f"timed out after {timeout_s:.0f}s: {child.why()}") from None
        wall, exited_at = time.perf_counter() - started, time.time()
        if code != 0:
            raise ProcessFailedError(f"exit {code}: {child.why()}")
    return Timed(round(wall, 3), spawned_at, exited_at)


def first_line(child: Child, timeout_s: float) -> str:
    """The first complete line the child writes to stdout (e.g. a server's URL); raises if it dies or stalls."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = child.out.read_text(errors="replace") if child.out.exists() else ""
        if "\n" in text:
            return text.split("\n", 1)[0].strip()
        if child.proc.poll() is not None:
            raise ProcessFailedError(f"exited {child.proc.returncode} before printing: {child.why()}")
        time.sleep(0.05)
    raise ProcessFailedError(f"printed nothing in {timeout_s:.0f}s: {child.why()}")


def install_termination_handlers() -> None:
    """SIGTERM and SIGINT unwind the stack (so every `spawned` block stops its child), once.

    The first signal raises; later ones are ignored so a second Ctrl-C, or the runner's SIGTERM after the
    terminal's SIGINT, cannot interrupt the cleanup half way. Handled signals reset to the default in
    children at exec, so the children still obey SIGINT (an inherited "ignore" would make dagster dev
    deaf to it).
    """

    def handler(signum: int, _frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
