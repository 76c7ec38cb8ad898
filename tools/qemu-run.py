#!/usr/bin/env python3
"""Runs QEMU with a bounded wall-clock time, copies its console to stdout (and a log), and
answers console prompts in order: --on PATTERN TEXT sends TEXT once PATTERN has appeared
after the previous answer. That is how a test types at U-Boot's prompt without guessing at
timing. Exits with QEMU's exit status (the image's semihosting exit code), or 124 on timeout.

Usage: qemu-run.py [--timeout SECONDS] [--log FILE] [--on PATTERN TEXT]... -- QEMU ARGS...
"""
import os
import select
import subprocess
import sys
import time


def main(argv):
    timeout, log, answers = 120.0, None, []
    i = 0
    while i < len(argv) and argv[i] != "--":
        a = argv[i]
        if a == "--timeout":
            timeout = float(argv[i + 1]); i += 2
        elif a == "--log":
            log = argv[i + 1]; i += 2
        elif a == "--on":
            answers.append((argv[i + 1].encode(), argv[i + 2].encode().decode("unicode_escape").encode())); i += 3
        else:
            sys.exit(f"qemu-run: unknown option {a}")
    cmd = argv[i + 1:]
    if not cmd:
        sys.exit("qemu-run: no QEMU command after --")
    logf = open(log, "wb") if log else None
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf, pos, deadline = b"", 0, time.monotonic() + timeout
    out = sys.stdout.buffer
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            p.kill()
            p.wait()
            msg = f"\nqemu-run: timeout after {timeout:.0f} s\n".encode()
            out.write(msg); logf and logf.write(msg)
            return 124
        r, _, _ = select.select([p.stdout], [], [], min(left, 0.5))
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            out.write(chunk); out.flush()
            if logf:
                logf.write(chunk); logf.flush()
            buf += chunk
            while answers:
                k = buf.find(answers[0][0], pos)
                if k < 0:
                    break
                pos = k + len(answers[0][0])
                p.stdin.write(answers[0][1]); p.stdin.flush()
                answers.pop(0)
    rc = p.wait()
    if logf:
        logf.close()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
