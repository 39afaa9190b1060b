"""How a job ends reaches the console, whatever ends it.

A rule runs `python -m aftbench --log LOG CMD ...`. This process forks: the child does the work
with its output in LOG; the parent only waits and names how the child ended. So:
- a failure's cause is the log's last line; when the log cannot be written (a full disk under
  results/logs), the cause goes to stderr, which Snakemake shows;
- SIGTERM (Snakemake stopping its jobs, `kill`, the lifeline of a killed Snakemake) and Ctrl-C
  end the job with one line each, no traceback (outputs are written atomically; training resumes
  from its checkpoint); a job that has not unwound `STOP_GRACE_S` after the signal (a library
  swallowed the exception it raised: seen when Ctrl-C lands while torch is starting up) is ended
  there and then, with the same line saying so;
- SIGKILL, which no process sees itself, is named by the parent, and told apart from the
  out-of-memory killer by the cgroup's `oom_kill` count (cgroup v2), where the kernel keeps one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

RESUMES = "finished outputs are kept; a training run resumes from its last checkpoint on the next run"
STOP_GRACE_S = 10.0  # after SIGTERM or Ctrl-C, how long the work may take to unwind before it is ended


class Stopped(BaseException):
    """SIGTERM arrived (a BaseException, so that no `except Exception` swallows it)."""


def _write(fd: int, text: str) -> None:
    os.write(fd, (text.rstrip("\n") + "\n").encode(errors="replace"))


def _say(fd: int | None, text: str) -> bool:
    """Write one line to fd; False when it cannot be written (a full disk, a closed fd)."""
    if fd is None:
        return False
    try:
        _write(fd, text)
        return True
    except OSError:
        return False


def _tell(log_fd: int | None, console: int, text: str) -> None:
    """The line goes to the log; to the console (stderr) instead when the log cannot take it."""
    if log_fd is None:
        _say(console, text)
        return
    try:
        _write(log_fd, text)
    except OSError as err:
        _say(console, f"{text}\n  (its log cannot be written: {err.strerror})")


def _oom_kills() -> int | None:
    """How many processes the out-of-memory killer ended in this process's cgroup (cgroup v2)."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
        with open(f"/sys/fs/cgroup{path}/memory.events") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("oom_kill "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _open_log(log: str, console: int, what: str) -> int | None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
        return os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as err:
        _say(console, f"aftbench {what}: cannot write its log {log} ({err.strerror}); its output follows here")
        return None


def _child(work: Callable[[], int | None], what: str, log_fd: int | None, console: int) -> int:
    if log_fd is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)

    interrupted = f"aftbench {what}: interrupted (Ctrl-C)"
    stopped = (
        f"aftbench {what}: stopped by SIGTERM (Snakemake stopping its jobs, `kill`, or the lifeline of a killed "
        "Snakemake)"
    )

    def end_anyway(line: str, rc: int) -> None:
        """The exception a signal raised may be swallowed (a library's `except BaseException`, or C
        code clearing the error while it imports): the job then ends here, STOP_GRACE_S later."""

        def hard_stop():
            _tell(log_fd, console, f"{line}; it had not stopped {STOP_GRACE_S:g} s later, so it was ended; {RESUMES}")
            os._exit(rc)

        timer = threading.Timer(STOP_GRACE_S, hard_stop)
        timer.daemon = True
        timer.start()

    def on_int(signum, frame):
        end_anyway(interrupted, 128 + signal.SIGINT)
        raise KeyboardInterrupt

    def on_term(signum, frame):
        end_anyway(stopped, 128 + signal.SIGTERM)
        raise Stopped

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (`cmd &`)
        signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    try:
        return int(work() or 0)
    except KeyboardInterrupt:
        _tell(log_fd, console, f"{interrupted}; {RESUMES}")
        return 128 + signal.SIGINT
    except Stopped:
        _tell(log_fd, console, f"{stopped}; {RESUMES}")
        return 128 + signal.SIGTERM
    except Exception as err:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except OSError:
            pass  # the log is on a full disk: the line below reaches the console instead
        _tell(log_fd, console, f"aftbench {what} failed: {type(err).__name__}: {err}")
        return 1


def run_logged(
    work: Callable[[], int | None],
    what: str,
    log: str,
    usage: dict | None = None,
    on_start: Callable[[int], None] | None = None,
) -> int:
    """Run `work` in a forked child whose stdout and stderr go to `log`; return its exit status
    (128 + the signal when a signal ended it) after naming on the console anything the log could
    not say (see module docstring). `on_start(pid)` hears the child's pid; `usage`, if given,
    receives the child's own wall seconds, CPU seconds and peak memory (`elapsed_s`, `cpu_s`,
    `max_rss_mb`, from wait4)."""
    console = os.dup(2)
    log_fd = _open_log(log, console, what)
    oom_before = _oom_kills()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: the work, then straight out (the parent owns every cleanup)
        rc = 1
        try:
            rc = _child(work, what, log_fd, console)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except OSError:
                pass
            os._exit(rc)
    # the parent: forward a SIGTERM to the child (Ctrl-C reaches the child from the terminal itself)
    started = time.monotonic()
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: os.kill(pid, signal.SIGTERM)),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        if on_start is not None:
            on_start(pid)
        _, status, rusage = os.wait4(pid, 0)  # retried by Python when a forwarded signal interrupts it
    except ChildProcessError:
        status, rusage = 1 << 8, None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if usage is not None and rusage is not None:
        usage.update(
            elapsed_s=time.monotonic() - started,
            cpu_s=rusage.ru_utime + rusage.ru_stime,
            max_rss_mb=rusage.ru_maxrss / 1024,  # Linux: kB
        )
    try:
        return _ended(status, what, log_fd, console, oom_before)
    finally:
        for fd in (log_fd, console):
            if fd is not None:
                os.close(fd)


def _ended(status: int, what: str, log_fd: int | None, console: int, oom_before: int | None) -> int:
    """The child's exit status; a signal that ended it is named in its log and on the console."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
    oom_after = _oom_kills()
    if sig == signal.SIGKILL and oom_before is not None and oom_after is not None and oom_after > oom_before:
        why = "the out-of-memory killer ended it: its memory ran out (ask for more: launch.resources.*.mem_gb)"
    elif sig == signal.SIGKILL:
        why = "by `kill -9` or the out-of-memory killer (`dmesg | grep -i oom` tells which)"
    else:
        why = "by a signal it does not handle"
    text = f"aftbench {what}: killed by {name} ({why}); {RESUMES}"
    _say(log_fd, text)
    _say(console, text)  # a killed job's log may say nothing else: the console hears it too
    return 128 + sig
