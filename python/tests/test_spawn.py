import os
import subprocess
import sys
import textwrap
import time

import msgpack


WORKER = textwrap.dedent("""
    from multifrost import ChildWorker
    class W(ChildWorker):
        def add(self, a, b):
            return a + b
    W(disconnect_grace=0.5).run()
""")


def run_worker(env_port, **popen):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__import__("multifrost").__file__)))
    env.pop("COMLINK_ZMQ_PORT", None)
    if env_port is not None:
        env["COMLINK_ZMQ_PORT"] = env_port
    return subprocess.Popen([sys.executable, "-c", WORKER], env=env, stderr=subprocess.PIPE, text=True, **popen)


def test_invalid_port_is_a_clear_fatal_exit_1():
    for port in ("abc", "80", "65536", "-1"):
        process = run_worker(port)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 1
        assert f"FATAL: invalid COMLINK_ZMQ_PORT '{port}'" in stderr and "Traceback" not in stderr


def test_neither_port_nor_service_id_is_a_fatal_exit_1():
    process = run_worker(None)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 1 and "FATAL: Need COMLINK_ZMQ_PORT" in stderr


def test_spawned_worker_exits_when_the_parent_connection_is_gone(parent_dealer):
    dealer, port = parent_dealer
    process = run_worker(port)
    try:
        message = {"app": "comlink_ipc_v4", "id": "c", "type": "call", "timestamp": time.time(), "function": "add", "args": [1, 2]}
        dealer.send_multipart([b"", msgpack.packb(message)])
        assert dealer.poll(10_000)
        assert msgpack.unpackb(dealer.recv_multipart()[-1])["result"] == 3
        dealer.close()  # the parent's socket is gone (its process would be too)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
