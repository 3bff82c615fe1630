"""The decisions of common.job_leases, without I/O: what a lost run does to its job, and when a
lease holder is known to be dead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from common.job_leases import holder_id, holder_is_dead, pause_after_pass, record_lost_run
from common.models import Job


def lost_job(**values) -> Job:
    job = Job(kind="diagnostics.echo", status="progress", attempts=1, lost_runs=0)
    job.cancel_requested = False
    for name, value in values.items():
        setattr(job, name, value)
    return job


def test_a_lost_run_queues_the_job_again_with_its_reason():
    job = lost_job(lease_holder="elsewhere:1")
    assert record_lost_run(job, max_attempts=3) is True
    assert (job.status, job.lost_runs, job.attempts) == ("queued", 1, 1)
    assert job.error_code == "worker_lost" and "lost" in job.error_message
    assert job.lease_holder is None and job.lease_expires_at is None
    assert job.finished_at is None


def test_the_last_allowed_lost_run_fails_the_job():
    job = lost_job(lost_runs=2, attempts=3)
    assert record_lost_run(job, max_attempts=3) is False
    assert (job.status, job.error_code, job.lost_runs) == ("failed", "worker_lost", 3)
    assert "3 times" in job.error_message and job.finished_at is not None


def test_a_cancel_requested_while_lost_ends_canceled_not_queued():
    job = lost_job(cancel_requested=True)
    assert record_lost_run(job, max_attempts=3) is False
    assert job.status == "canceled" and job.error_code is None and job.finished_at is not None


def test_only_a_vanished_process_on_this_host_is_known_dead():
    assert not holder_is_dead(holder_id())  # this process
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    assert holder_is_dead(f"{host}:{gone.pid}")
    assert not holder_is_dead(f"another-{host}:{gone.pid}")  # can't tell: wait for the lease
    assert not holder_is_dead(None) and not holder_is_dead("garbage")
    assert holder_id() == f"{host}:{os.getpid()}"


def test_a_reaper_wakes_when_the_next_lease_expires_but_never_spins():
    assert pause_after_pass(None, heartbeat=10) == 10
    assert pause_after_pass(25.0, heartbeat=10) == 10  # live jobs: the usual interval
    assert pause_after_pass(3.0, heartbeat=10) == 3.05  # a dying one: wake as it expires
    assert pause_after_pass(-4.0, heartbeat=10) == 0.5  # expired but locked: no busy loop
