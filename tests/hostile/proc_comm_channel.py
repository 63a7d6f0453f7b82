"""Two overlapping seeds swap their weak teachers through thread names: each names its threads
(prctl PR_SET_NAME, 15 bytes each) with chunks of its teacher's labels and reads the other
seed's from /proc/<pid>/task/*/comm. Success shows as ``rows_crossed`` > 0 (the rows of the
other seed's teacher it received). Contained: /proc is mounted hidepid=invisible in the
sandbox and every slot has its own uid, so a seed sees only its own processes (rows crossed 0).
Run alone by the catalog; tests/test_hostile.py runs two seeds of it at once."""

import ctypes
import os
import threading
import time

import numpy as np

EXPECT = "ok"
CHECK = "no_rows_crossed"
TAG = "q"  # first byte of every name this channel writes
PAYLOAD = 10  # labels per name: tag, seed, 3 hex chunk digits, 10 base-36 labels = 15 bytes
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
SENDERS = 12
WINDOW_S = 6.0  # how long a seed keeps the channel open
PR_SET_NAME = 15


def _chunks(labels, seed):
    out = []
    for i in range(0, len(labels), PAYLOAD):
        body = "".join(DIGITS[int(v)] for v in labels[i : i + PAYLOAD])
        out.append(f"{TAG}{seed % 10}{i // PAYLOAD:03x}{body}")
    return out


def _send(names, offset, stop, libc):
    while not stop.is_set():
        for name in names[offset::SENDERS]:
            libc.prctl(PR_SET_NAME, name.encode(), 0, 0, 0)
            time.sleep(0.002)
            if stop.is_set():
                return


def _scan(mine, got):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                    name = fh.read().strip()
            except OSError:
                continue
            if len(name) > 5 and name[0] == TAG and name[1] != mine:
                try:
                    got[(name[1], int(name[2:5], 16))] = name[5:]
                except ValueError:
                    continue


def run(ctx):
    labels = np.asarray(ctx.weak_test_probs).argmax(1)
    names = _chunks(labels, ctx.seed)
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_send, args=(names, k, stop, libc), daemon=True)
        for k in range(SENDERS)
    ]
    for t in threads:
        t.start()
    got: dict = {}
    started = time.monotonic()
    complete_at = None
    while time.monotonic() - started < WINDOW_S:
        _scan(str(ctx.seed % 10), got)
        if complete_at is None and got and len(got) >= len(names):
            complete_at = time.monotonic()
        if complete_at is not None and time.monotonic() - complete_at > 1.5:  # let the other finish
            break
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    ctx.report("rows_crossed", int(sum(len(v) for v in got.values())))
    return np.asarray(ctx.weak_test_probs)
