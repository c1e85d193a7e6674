"""Streaming (docs/wire.md, Streaming; docs/python.md, Streaming): generator methods send their
values as `chunk`s, never more than the caller's credit ahead.

The pure parts (StreamFlow, stream_sync/stream_async, the wire) are driven directly; the rest
talks to a worker serving in a background thread (connect mode, temporary registry) through a
DEALER, as a parent would.
"""

import asyncio
import threading
import time
import uuid

import msgpack
import pytest
import zmq

from multifrost import ChildWorker, FileRegistry
from multifrost import _wire as wire
from multifrost._streaming import StreamFlow, stream_async, stream_kind, stream_sync

APP = "comlink_ipc_v4"


def decode(payload):
    return msgpack.unpackb(payload, strict_map_key=False)


class Counter:
    """An endless generator that counts what it produced and whether its `finally` ran."""

    def __init__(self):
        self.produced = 0
        self.closed = threading.Event()

    def sync(self):
        try:
            while True:
                self.produced += 1
                yield self.produced
        finally:
            self.closed.set()

    async def asynchronous(self):
        try:
            while True:
                self.produced += 1
                yield self.produced
        finally:
            self.closed.set()


# -- StreamFlow and the producers ---------------------------------------------------------------


def test_take_spends_the_credit_then_waits_for_a_grant():
    flow = StreamFlow(2)
    assert flow.take() and flow.take()
    taken = threading.Event()
    thread = threading.Thread(target=lambda: flow.take() and taken.set())
    thread.start()
    assert not taken.wait(0.1)  # no credit left: blocked
    flow.grant(1)
    assert taken.wait(5)
    thread.join(5)


def test_cancel_wakes_a_producer_waiting_for_credit():
    flow = StreamFlow(0)
    results = []
    thread = threading.Thread(target=lambda: results.append(flow.take()))
    thread.start()
    flow.cancel()
    thread.join(5)
    assert results == [False] and flow.cancelled


def test_take_async_waits_on_the_loop_for_a_grant_from_another_thread():
    async def main():
        flow = StreamFlow(0)
        waiting = asyncio.ensure_future(flow.take_async())
        await asyncio.sleep(0)
        assert not waiting.done()
        threading.Thread(target=flow.grant, args=(1,)).start()
        assert await asyncio.wait_for(waiting, 5) is True
        threading.Thread(target=flow.cancel).start()
        assert await asyncio.wait_for(flow.take_async(), 5) is False

    asyncio.run(main())


def test_a_sync_producer_is_not_resumed_beyond_its_credit_and_cancel_closes_it():
    counter, flow, sent, done = Counter(), StreamFlow(3), [], []
    got_three = threading.Event()

    def send(payload):
        sent.append(decode(payload))
        if len(sent) == 3:
            got_three.set()

    thread = threading.Thread(target=lambda: done.append(decode(stream_sync(counter.sync(), flow, "c1", send, 1 << 20))))
    thread.start()
    assert got_three.wait(5)
    thread.join(0.1)
    assert counter.produced == 3  # waiting for credit: the generator is not resumed
    flow.grant(2)
    flow.cancel()
    thread.join(5)
    assert counter.closed.is_set()
    assert [m["seq"] for m in sent] == list(range(len(sent))) and 3 <= len(sent) <= 5
    assert [m["value"] for m in sent] == list(range(1, len(sent) + 1))
    assert all(m["type"] == "chunk" and m["id"] == "c1" for m in sent)
    assert done[0]["type"] == "response" and done[0]["result"] is None


def test_an_async_producer_stops_at_its_credit_and_aclose_runs_its_finally():
    counter, flow, sent = Counter(), StreamFlow(4), []

    async def main():
        task = asyncio.ensure_future(stream_async(counter.asynchronous(), flow, "c2", lambda p: sent.append(decode(p)), 1 << 20))
        while len(sent) < 4:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert counter.produced == 4 and not task.done()
        flow.cancel()
        return decode(await asyncio.wait_for(task, 5))

    reply = asyncio.run(main())
    assert reply["type"] == "response" and reply["result"] is None
    assert counter.closed.is_set() and [m["value"] for m in sent] == [1, 2, 3, 4]


def test_a_raise_mid_stream_is_an_error_reply_after_the_chunks_before_it():
    def gen():
        yield 1
        yield 2
        raise ValueError("no more")

    sent = []
    reply = decode(stream_sync(gen(), StreamFlow(10), "c3", lambda p: sent.append(decode(p)), 1 << 20))
    assert [m["value"] for m in sent] == [1, 2]
    assert reply["type"] == "error" and reply["error"] == "ValueError: no more" and "Traceback" in reply["stack"]


def test_an_unencodable_value_is_an_encode_error_and_closes_the_generator():
    closed = threading.Event()

    def gen():
        try:
            yield "fine"
            yield {1: "int key"}
            yield "never"
        finally:
            closed.set()

    sent = []
    reply = decode(stream_sync(gen(), StreamFlow(10), "c4", lambda p: sent.append(decode(p)), 1 << 20))
    assert [m["value"] for m in sent] == ["fine"]
    assert reply["type"] == "error" and reply["error"].startswith("EncodeError: result has a map key of type int")
    assert closed.is_set()


def test_what_streams():
    async def agen():
        yield 1

    def gen():
        yield 1

    assert stream_kind(gen()) == "sync" and stream_kind(iter([1])) == "sync" and stream_kind(map(str, [1])) == "sync"
    assert stream_kind(agen()) == "async"
    for value in ([1], (1,), "text", b"bytes", {"a": 1}, None, 3):
        assert stream_kind(value) is None


# -- the wire ------------------------------------------------------------------------------------


def frame(**fields):
    message = {"app": APP, "id": "m1", "timestamp": 1.0}
    message.update(fields)
    return msgpack.packb(message, use_bin_type=True)


def test_a_call_keeps_a_valid_stream_field_and_drops_any_other():
    assert wire.parse_frame(frame(type="call", function="f", stream={"credit": 16}))["stream"] == {"credit": 16}
    assert wire.parse_frame(frame(type="call", function="f", stream={"credit": 0}))["stream"] == {"credit": 0}
    for bad in ({"credit": -1}, {"credit": 1.5}, {"credit": True}, {}, [16], 16, None):
        assert "stream" not in wire.parse_frame(frame(type="call", function="f", stream=bad))


def test_credit_and_chunk_messages_are_validated():
    assert wire.parse_frame(frame(type="credit", n=8))["n"] == 8
    for bad in (-1, 1.0, "8", None, False):
        rejected = wire.parse_frame(frame(type="credit", n=bad))
        assert isinstance(rejected, wire.Rejected) and rejected.reason == "bad-credit" and rejected.id == "m1"
    assert wire.parse_frame(frame(type="chunk", seq=0))["value"] is None
    assert wire.parse_frame(frame(type="chunk", seq=-1)).reason == "bad-chunk"
    chunk = decode(wire.encode_chunk("m1", 7, [1, "x"]))
    assert chunk["type"] == "chunk" and chunk["id"] == "m1" and chunk["seq"] == 7 and chunk["value"] == [1, "x"]


# -- a worker, through a DEALER ------------------------------------------------------------------


class Streams(ChildWorker):
    def __init__(self, service_id, **options):
        super().__init__(service_id, **options)
        self.counter = Counter()
        self.was_cancelled = None

    def count(self, n):
        for i in range(n):
            yield i

    async def acount(self, n):
        for i in range(n):
            yield i

    def forever(self):
        try:
            yield from self.counter.sync()
        finally:
            self.was_cancelled = self.call.cancelled

    async def aforever(self):
        try:
            async for value in self.counter.asynchronous():
                yield value
        finally:
            self.was_cancelled = self.call.cancelled

    def call_ids(self, n):
        for _ in range(n):
            yield self.call.id

    def plain(self, x):
        return x * 2


class Parent:
    """A DEALER talking to a Streams worker serving in a background thread."""

    def __init__(self, tmp_path, **options):
        self.registry = FileRegistry(tmp_path)
        self.worker = Streams("streams", registry=self.registry, **options)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()
        port = self.registry.discover("streams", timeout=5)["port"]
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send(self, **message):
        full = {"app": APP, "id": uuid.uuid4().hex, "timestamp": time.time()}
        full.update(message)
        self.sock.send_multipart([b"", msgpack.packb(full, use_bin_type=True)])
        return full["id"]

    def stream(self, function, *args, credit=16):
        return self.send(type="call", function=function, args=list(args), stream={"credit": credit})

    def recv(self, timeout=5.0):
        assert self.sock.poll(int(timeout * 1000)), "nothing came"
        return decode(self.sock.recv_multipart()[-1])

    def read_stream(self, call_id, credit=16):
        """Reads a stream to its end as the TS parent does (credit 8 back after every 8 taken)."""
        values, taken = [], 0
        while True:
            message = self.recv()
            assert message["id"] == call_id
            if message["type"] != "chunk":
                return values, message
            assert message["seq"] == len(values)
            values.append(message["value"])
            taken += 1
            if taken == credit // 2:
                self.send(type="credit", id=call_id, n=taken)
                taken = 0

    def close(self):
        self.worker.stop()
        self.thread.join(10)
        self.sock.close()
        self.context.term()


@pytest.fixture
def parent(tmp_path):
    started = Parent(tmp_path)
    yield started
    started.close()


@pytest.mark.parametrize("function", ["count", "acount"])
def test_a_generator_method_streams_its_values_in_order_then_a_null_response(parent, function):
    values, end = parent.read_stream(parent.stream(function, 1000))
    assert values == list(range(1000))
    assert end["type"] == "response" and end["result"] is None
    assert parent.worker.stats["chunks_sent"] == 1000
    # The I/O thread counts the call as ended just after sending its last message.
    deadline = time.monotonic() + 2
    while parent.worker.stats["in_flight"] != 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert parent.worker.stats["in_flight"] == 0


def test_self_call_is_the_streamed_call_inside_the_generator(parent):
    call_id = parent.stream("call_ids", 3)
    values, _ = parent.read_stream(call_id)
    assert values == [call_id] * 3


def test_heartbeats_are_answered_while_a_sync_generator_waits_for_credit(parent):
    call_id = parent.stream("forever", credit=4)
    assert [parent.recv()["value"] for _ in range(4)] == [1, 2, 3, 4]
    for _ in range(3):
        beat = parent.send(type="heartbeat")
        reply = parent.recv()
        assert reply["type"] == "heartbeat" and reply["id"] == beat
    assert parent.worker.counter.produced == 4  # not resumed without credit
    parent.send(type="credit", id=call_id, n=2)
    assert [parent.recv()["value"] for _ in range(2)] == [5, 6]
    parent.send(type="cancel", id=call_id)
    end = parent.recv()
    assert end["type"] == "response" and end["id"] == call_id
    assert parent.worker.counter.closed.is_set() and parent.worker.was_cancelled is True
    assert parent.worker.counter.produced == 6


def test_a_generator_method_called_without_stream_is_an_encode_error(parent):
    for function in ("count", "acount"):
        parent.send(type="call", function=function, args=[3])
        reply = parent.recv()
        assert reply["type"] == "error" and reply["error"].startswith("EncodeError: cannot send a value of type")
        assert "streamed call" in reply["error"]


def test_a_plain_method_called_with_stream_answers_with_its_single_result(parent):
    call_id = parent.stream("plain", 21)
    reply = parent.recv()
    assert reply == {**reply, "type": "response", "id": call_id, "result": 42}
    assert parent.worker.stats["chunks_sent"] == 0


def test_a_stream_cancelled_while_it_waits_for_a_thread_never_runs_and_gets_no_reply(tmp_path):
    started = Parent(tmp_path, max_concurrency=1)
    try:
        running = started.stream("forever", credit=1)
        assert started.recv()["value"] == 1  # the one pool thread now waits for credit
        queued = started.stream("count", 5)
        started.send(type="cancel", id=queued)
        started.send(type="cancel", id=running)
        end = started.recv()
        assert end["id"] == running and end["type"] == "response"
        assert not started.sock.poll(300)  # nothing for the queued call, ever
        stats = started.worker.stats
        assert stats["calls_cancelled"] == 2 and stats["calls_cancelled_queued"] == 1 and stats["in_flight"] == 0
    finally:
        started.close()


@pytest.mark.parametrize("function", ["forever", "aforever"])
def test_stopping_closes_a_stream_that_waits_for_credit(tmp_path, function):
    started = Parent(tmp_path, shutdown_grace=0.2)
    try:
        started.stream(function, credit=2)
        assert [started.recv()["value"] for _ in range(2)] == [1, 2]
        began = time.monotonic()
        started.worker.stop()
        started.thread.join(10)
        assert not started.thread.is_alive() and time.monotonic() - began < 5
        assert started.worker.counter.closed.is_set() and started.worker.was_cancelled is True
    finally:
        started.close()
