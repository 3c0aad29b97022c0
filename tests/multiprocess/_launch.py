"""Launch worker processes on this machine: a free port, a subprocess timeout, stragglers killed.

Each worker gets ``JAX_COORDINATOR_ADDRESS=127.0.0.1:<free port>``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID`` (read by ``geomjax.distributed.initialize_from_env``), ``JAX_PLATFORMS=cpu``
and ``XLA_FLAGS=--xla_force_host_platform_device_count=<devices per process>``. Each runs in its
own session, so a timeout or a failed peer kills its whole process group by id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "_worker.py"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Launch:
    """What came back from one launch."""

    returncodes: list[int | None]
    logs: list[str]
    wall_s: float
    timed_out: bool
    exit_times: list[float | None] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.timed_out and all(rc == 0 for rc in self.returncodes)

    def report(self) -> str:
        parts = [f"returncodes {self.returncodes}, {self.wall_s:.1f} s, timed out {self.timed_out}"]
        for i, log in enumerate(self.logs):
            parts.append(f"--- process {i} (last 3000 characters) ---\n{log[-3000:]}")
        return "\n".join(parts)


def worker_env(n_processes: int, process_id: int, devices: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_NUM_PROCESSES=str(n_processes),
        JAX_PROCESS_ID=str(process_id),
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        ),
    )
    return env


def _kill(proc: subprocess.Popen) -> None:
    """Kill the worker's process group (its own session, started by us) by id."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def launch(
    args: list[str],
    n_processes: int,
    devices: int,
    *,
    timeout: float = 240.0,
    grace: float = 30.0,
    command: list[str] | None = None,
    on_poll: Callable[[list[subprocess.Popen], list[Path]], None] | None = None,
) -> Launch:
    """Run ``n_processes`` workers with ``devices`` CPU devices each; wait for all.

    ``command`` replaces ``python _worker.py`` (e.g. a pytest run). When one worker fails, the
    others get ``grace`` seconds (their own heartbeat timeout should end them sooner) and are
    then killed; after ``timeout`` seconds in all every worker left is killed. ``on_poll`` is
    called with the processes and their log paths about every 0.1 s (the kill test uses it).
    """
    port = free_port()
    base = command if command is not None else [sys.executable, str(WORKER)]
    tmp = Path(tempfile.mkdtemp(prefix="geomjax-mp-"))
    procs, paths = [], []
    start = time.monotonic()
    for i in range(n_processes):
        path = tmp / f"process{i}.log"
        paths.append(path)
        with open(path, "w") as log:
            procs.append(
                subprocess.Popen(
                    base + list(args),
                    cwd=ROOT,
                    env=worker_env(n_processes, i, devices, port),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    exit_times: list[float | None] = [None] * n_processes
    timed_out, first_failure = False, None
    try:
        while True:
            now = time.monotonic()
            for i, p in enumerate(procs):
                if exit_times[i] is None and p.poll() is not None:
                    exit_times[i] = now - start
                    if p.returncode != 0 and first_failure is None:
                        first_failure = now
            if all(t is not None for t in exit_times):
                break
            if now - start > timeout:
                timed_out = True
                break
            if first_failure is not None and now - first_failure > grace:
                break
            if on_poll is not None:
                on_poll(procs, paths)
            time.sleep(0.1)
    finally:
        for p in procs:
            _kill(p)
    logs = [path.read_text(errors="replace") for path in paths]
    return Launch(
        [p.returncode for p in procs], logs, time.monotonic() - start, timed_out, exit_times
    )
