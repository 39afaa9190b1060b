"""The waiting process of a submitted job: how long it may wait, and the loop that waits.

Two clocks, because on a busy cluster a job may sit in the queue far longer than it runs:
- PENDING (queued, held, requeued and waiting again): `launch.pending_max_h` (72 h by default;
  null = no limit), counted from the moment the job (re-)entered the queue;
- RUNNING: the job's own time limit (`launch.resources.<kind>.time_min`, × the runs of a pack)
  plus `launch.running_grace_min`, counted from the moment it started running. SLURM ends a job at
  its time limit itself; this clock only catches a job whose end never reaches accounting.
A requeued job starts both clocks afresh. Past either limit the job is cancelled and the rule fails
naming the state and the job's logs.

The loop also cancels the job on SIGINT, SIGTERM or SIGHUP (Ctrl-C and `kill -TERM` reach the whole
process group) and when the Snakemake that started it is gone (aftbench.launch.lifeline).
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from typing import Protocol

from aftbench.launch.executor import JobFailed
from aftbench.launch.lifeline import alive, watched_ancestors
from aftbench.launch.slurm_status import RUNNING_STATES, bare_state


class Ticket(Protocol):
    """What a waiting process waits on: one submitit job, or one run inside a pack."""

    label: str  # e.g. "slurm job 123 (aftbench:train:<run id>)"

    def start(self) -> None: ...  # submit it (or queue it for a pack)

    def state(self) -> str | None: ...  # the scheduler's state (None: not known yet, i.e. queued)

    def ended(self, state: str | None) -> bool: ...  # the scheduler says nothing more will happen

    def ready(self) -> bool: ...  # this run's outcome is available

    def outcome(self, state: str | None) -> int: ...  # its exit code, or JobFailed naming why

    def cancel(self) -> None: ...

    def logs(self) -> str: ...  # where to look, for messages

    def attempt(self) -> str | None: ...  # when the job's current attempt started (SLURM), if known


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_held = 0  # > 0 inside signals_held()
_caught: list[int] = []  # the stop signals this waiting process received


def _on_signal(signum, frame):
    _caught.append(signum)
    if not _held:
        raise KeyboardInterrupt


@contextmanager
def signals_held():
    """Inside wait_for: Ctrl-C, SIGTERM and SIGHUP wait until the block is done (a job submitted and
    recorded as one step, never submitted and forgotten), then stop the wait, which cancels the job.
    (Blocking them with the signal mask instead would leave them blocked in the job that submitit
    starts as a local subprocess.)"""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if _caught and not _held:
            raise KeyboardInterrupt


class Deadlines:
    """The PENDING and RUNNING clocks (module docstring)."""

    def __init__(self, pending_s: float | None, running_s: float, clock=time.monotonic):
        self.pending_s, self.running_s, self._clock = pending_s, running_s, clock
        self.phase: str | None = None
        self.attempt: str | None = None
        self.since = clock()

    def overdue(self, state: str | None, attempt: str | None = None) -> str | None:
        """None while within the current phase's limit; else what is overdue, in words. `attempt`
        (SLURM's Start of the job) tells a requeued job that is running again from one that never
        stopped, when no look fell between its two runs."""
        phase = "running" if bare_state(state) in RUNNING_STATES else "pending"
        now = self._clock()
        if phase != self.phase or (attempt is not None and attempt != self.attempt):
            self.phase, self.since, self.attempt = phase, now, attempt
        limit = self.running_s if phase == "running" else self.pending_s
        if limit is None or now - self.since <= limit:
            return None
        key = "its time limit + launch.running_grace_min" if phase == "running" else "launch.pending_max_h"
        return (
            f"still {state or 'PENDING'} after {(now - self.since) / 60:.0f} min {phase} ({key}: {limit / 60:.0f} min)"
        )


def wait_for(ticket: Ticket, deadlines: Deadlines, tick_s: float) -> int:
    """Start `ticket` (submit, or queue for a pack), wait until it has an outcome and return it
    (module docstring)."""
    _caught.clear()
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    try:
        with signals_held():
            ticket.start()
        ancestors = watched_ancestors()
        while True:
            if ticket.ready():
                state = None
                break
            state = ticket.state()
            if ticket.ended(state):
                break
            if not all(alive(p) for p in ancestors):
                ticket.cancel()
                raise JobFailed(f"the Snakemake that launched {ticket.label} is gone (Snakemake killed?): cancelled it")
            late = deadlines.overdue(state, ticket.attempt())
            if late:
                ticket.cancel()
                raise JobFailed(f"{ticket.label} {late}: cancelled it. Logs: {ticket.logs()}")
            time.sleep(tick_s)
        try:
            return ticket.outcome(state)
        except JobFailed:
            if state is not None:  # ended without its result (NODE_FAIL...): were it requeued, no one would wait
                ticket.cancel()
            raise
    except KeyboardInterrupt:
        for s in SIGNALS:  # a second signal must not interrupt the cancel
            signal.signal(s, signal.SIG_IGN)
        ticket.cancel()
        sig = _caught[0] if _caught else signal.SIGINT
        print(f"cancelled {ticket.label} on signal {signal.Signals(sig).name}", flush=True)
        sys.exit(128 + sig)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
