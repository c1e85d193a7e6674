"""A throwaway single-member etcd for the tests (as test/helpers/etcd.ts): Debian's etcd-server
(`$MULTIFROST_ETCD`, default /usr/bin/etcd) on free loopback ports with a temporary data dir.
`remove()` stops it and deletes the dir; `stop()`/`start()` restart it on the same ports and data
(leases survive, as in a real restart)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ETCD = os.environ.get("MULTIFROST_ETCD", "/usr/bin/etcd")
READY = ("serving client traffic", "ready to serve client requests")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class TestEtcd:
    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="multifrost-etcd-py-")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, prefix: str, query: str = "") -> str:
        return f"etcd://{self.endpoint}/{prefix}/" + (f"?{query}" if query else "")

    def start(self, timeout: float = 15.0) -> None:
        client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        process = subprocess.Popen(
            [
                ETCD,
                "--name=test",
                f"--data-dir={os.path.join(self.data_dir, 'data')}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                "--logger=zap",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.process = process
        ready = threading.Event()
        log: list[str] = []

        def read() -> None:  # also drains the pipe for as long as etcd runs
            assert process.stderr is not None
            for raw in process.stderr:
                line = raw.decode("utf-8", errors="replace")
                if len(log) < 2000:
                    log.append(line)
                if any(marker in line for marker in READY):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd did not get ready (exit {process.returncode}):\n{''.join(log)[-2000:]}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
