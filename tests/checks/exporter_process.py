"""Running the exporter, and other servers, for the checks in this directory.

This module owns what check_deploy.py and drift_test.py both need: a free
loopback port, starting a process with its output in a log file, waiting until
it answers, and stopping it with SIGTERM to get its exit status. Python 3
standard library only.
"""

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HTTP_TIMEOUT = 15


class ProcessError(RuntimeError):
    """A process exited, or did not answer, before it should have."""


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=HTTP_TIMEOUT):
    """(status, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def wait_for(what, probe, timeout, interval=0.5, process=None):
    """Calls probe() until it returns something true, and returns that.

    An exception from probe() (connection refused while a server starts, say)
    counts as "not yet". Raises ProcessError when `process` exits first, or when
    `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ProcessError("%s exited with status %s" % (process.name, process.returncode))
        try:
            last = probe()
            if last:
                return last
        except ProcessError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure means "not yet"
            last = err
        time.sleep(interval)
    raise ProcessError("timed out waiting for %s (last: %r)" % (what, last))


class Process:
    """A server started in the background, stdout and stderr in `log`.

    Use it as a context manager: leaving the block kills it if it still runs.
    """

    def __init__(self, argv, log, env=None, cwd=None, name=None):
        self.argv = [str(a) for a in argv]
        self.log = Path(log)
        self.name = name or Path(self.argv[0]).name
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=cwd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        return self.proc.poll()

    def log_text(self):
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "".join(self.log_text().splitlines(keepends=True)[-lines:])

    def wait_for(self, what, probe, timeout, interval=0.5):
        """wait_for() that fails as soon as this process exits."""
        return wait_for(what, probe, timeout, interval, process=self)

    def stop(self, timeout=10):
        """Sends SIGTERM and returns the exit status; None when the process was
        still running `timeout` seconds later (it is killed then)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Exporter(Process):
    """The exporter binary listening on a free loopback port.

    Any --web.listen-address=... in `args` is replaced by that port.
    """

    def __init__(self, binary, args, log, env=None, cwd=None):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        argv = [binary] + [a for a in args if not a.startswith("--web.listen-address")]
        argv.append("--web.listen-address=127.0.0.1:%d" % self.port)
        super().__init__(argv, log, env=env, cwd=cwd, name="exporter")

    def url(self, path):
        return self.base + path

    def get(self, path, timeout=HTTP_TIMEOUT):
        """(status, body) of GET `path` from the exporter."""
        return http_get(self.url(path), timeout)

    def wait_until_answers(self, path, timeout, interval=0.1):
        """Waits until GET `path` answers 200."""
        return self.wait_for("%s to answer 200" % path,
                             lambda: self.get(path, timeout=2)[0] == 200, timeout, interval)
