"""Helpers for Kiln's interop tests: free loopback ports, a mosquitto broker started by hand, a
kiln cell run in the background, and polling without sleeping blind."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

# ctest stops a test that runs too long with SIGTERM: turn it into an exception so that the
# tests' `finally` blocks stop the brokers and peers they started.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    """Polls pred() until it returns something truthy; raises AssertionError with `what` after timeout s."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def wait_port(port, timeout=10):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_until(up, timeout, "port %d to accept connections" % port)


class Mosquitto:
    """Debian's mosquitto on 127.0.0.1:port, with persistence so sessions survive a restart."""

    def __init__(self, workdir, port):
        self.port = port
        self.dir = workdir
        self.conf = os.path.join(workdir, "mosquitto.conf")
        # Started as root, mosquitto drops to its own user, which must be able to save its database.
        os.chmod(workdir, 0o777)
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nqueue_qos0_messages true\n" % (port, workdir))
        self.proc = None

    def start(self):
        log = open(os.path.join(self.dir, "mosquitto.log"), "a")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None


class KilnCell:
    """`kiln cell run FILE` in the background; the cell text is written to a file first."""

    def __init__(self, kiln, workdir, text, name="cell.yaml", duration=0, rt=False):
        self.path = os.path.join(workdir, name)
        with open(self.path, "w") as f:
            f.write(text)
        self.stats = os.path.join(workdir, name + ".stats.json")
        self.out = open(os.path.join(workdir, name + ".out"), "w+")
        args = [kiln, "cell", "run", self.path, "--quiet", "--stats", self.stats] + ([] if rt else ["--no-rt"])
        if duration:
            args += ["--duration", str(duration)]
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT)

    def output(self):
        self.out.flush()
        with open(self.out.name) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("kiln cell run did not stop within %d s:\n%s" % (timeout, self.output()))


def run_kiln(kiln, *args, timeout=60):
    return subprocess.run([kiln, *args], capture_output=True, text=True, timeout=timeout)


def tempdir():
    return tempfile.TemporaryDirectory(prefix="kiln-interop-")
