"""Run a server command as a child, and end it when negforge dies, however it dies (kill -9 included).

vLLM runs in its own session (so a Ctrl-C in the terminal does not reach it half-way through a request), which
also means nothing stops it when the negforge process that started it is killed. This launcher sits between
them: `python -m negforge.generators.parent_watch PARENT_PID -- CMD...` starts CMD and polls its own parent;
when the parent is gone (its parent pid changes), it terminates the whole process group (vLLM forks workers),
SIGKILL after a grace period. A SIGTERM to the group (VLLMServer.stop) ends both the normal way. On Linux the
child also gets SIGTERM if this launcher itself dies (PR_SET_PDEATHSIG; safe here, as the launcher has one
thread), so a SIGKILL of the launcher alone leaves nothing behind either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_S = 20.0
POLL_S = 1.0


def _end_group(child: subprocess.Popen) -> int:
    """SIGTERM our process group but ourselves, wait for the child, SIGKILL after the grace period."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(os.getpgid(0), signal.SIGTERM)
        return child.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(os.getpgid(0), signal.SIGKILL)  # ourselves included: nothing is left behind
        return -9


def _die_with_us() -> None:
    """In the child, before exec: ask Linux for SIGTERM when its parent (this launcher) dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the polling loop still covers negforge's death
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m negforge.generators.parent_watch PARENT_PID -- CMD...", file=sys.stderr)
        return 2
    parent = int(argv[0])
    if os.getpgid(0) != os.getpid():  # a group of our own, so ending "our group" never reaches negforge's
        os.setsid()
    child = subprocess.Popen(argv[2:], preexec_fn=_die_with_us if sys.platform == "linux" else None)
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while child.poll() is None:
        if not stopping and os.getppid() != parent:  # negforge is gone: take the server down with it
            return _end_group(child)
        time.sleep(POLL_S)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
