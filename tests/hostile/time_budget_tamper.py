"""Grants itself more time: rewrites ctx.time_budget_s, tries to rewrite the job file, raise its
CPU limit, ignore SIGTERM and SIGALRM, then works "while time is left". Contained: the parent's
wall clock is the only budget that counts; the job file is read-only."""

import resource
import signal

EXPECT = "timeout"
TIME_BUDGET = 5


def run(ctx):
    ctx.time_budget_s = 1e9
    ctx.started_at += 1e9
    for sig in (signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU):
        signal.signal(sig, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError) as exc:
        ctx.log.info("cannot raise RLIMIT_CPU: %s", exc)
    try:
        with open("/aar/job.json", "w") as fh:
            fh.write('{"time_budget_s": 1e9}')
    except OSError as exc:
        ctx.log.info("cannot rewrite the job: %s", exc)
    n = 0
    while ctx.time_left() > 0:
        n += 1
