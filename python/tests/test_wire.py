import msgpack
import pytest

from multifrost import _wire as wire


def packed(message):
    return msgpack.packb(message, use_bin_type=True)


def call(**fields):
    message = {"app": wire.APP_ID, "id": "c1", "type": "call", "timestamp": 1.0, "function": "add", "args": [1, 2]}
    message.update(fields)
    return message


def test_ids_are_32_hex_digits_and_unique():
    ids = {wire.next_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_response_always_carries_result_and_core_fields():
    message = wire.create_response("x", None)
    assert message["result"] is None and "result" in message
    assert set(message) == {"app", "id", "type", "timestamp", "result"}
    assert message["app"] == "comlink_ipc_v4" and isinstance(message["timestamp"], float)
    decoded = msgpack.unpackb(wire.encode(message))
    assert "result" in decoded and decoded["result"] is None


def test_heartbeat_reply_keeps_request_metadata_and_adds_hb_response():
    reply = wire.create_heartbeat_reply({"id": "h", "metadata": {"hb_timestamp": 12.5, "extra": "kept"}})
    assert reply["id"] == "h" and reply["type"] == "heartbeat"
    assert reply["metadata"] == {"hb_timestamp": 12.5, "extra": "kept", "hb_response": True}
    assert wire.create_heartbeat_reply({"id": "h"})["metadata"] == {"hb_response": True}


def test_error_text_is_type_colon_message_with_traceback_apart():
    try:
        raise ValueError("boom")
    except ValueError as exc:
        error, stack = wire.format_exception(exc)
    assert error == "ValueError: boom"
    assert stack.startswith("Traceback") and "boom" in stack
    message = wire.create_error("e", error, stack)
    assert message["error"] == "ValueError: boom" and message["stack"] == stack


def test_ints_beyond_2_53_go_as_int64_or_uint64_never_float():
    for value, first_byte in ((2**53 + 1, 0xCF), (2**64 - 1, 0xCF), (-(2**63), 0xD3), (2**63 - 1, 0xCF)):
        data = msgpack.packb(value)
        assert data[0] == first_byte
        encoded = wire.encode({"v": value})
        assert msgpack.unpackb(encoded)["v"] == value


def test_bytes_go_as_bin_and_str_as_str():
    data = wire.encode({"b": b"\x00\xff", "s": "héllo"})
    decoded = msgpack.unpackb(data, raw=True)
    assert decoded[b"b"] == b"\x00\xff"  # bin stays bytes even with raw=True
    assert decoded[b"s"] == "héllo".encode()
    assert b"\xc4\x02\x00\xff" in data  # bin8 header


def test_values_the_wire_cannot_carry_become_an_error_reply():
    too_big = msgpack.unpackb(wire.encode_reply(wire.create_response("r", 2**64)))
    assert too_big["type"] == "error" and too_big["error"].startswith("EncodeError:")
    int_keys = msgpack.unpackb(wire.encode_reply(wire.create_response("r", {"a": [{1: "x"}]})), strict_map_key=False)
    assert int_keys["type"] == "error" and "string keys" in int_keys["error"]
    unknown = msgpack.unpackb(wire.encode_reply(wire.create_response("r", object())))
    assert unknown["type"] == "error" and "object" in unknown["error"]
    assert msgpack.unpackb(wire.encode_reply(wire.create_response("r", {1, 2})))["result"] in ([1, 2], [2, 1])
    assert msgpack.unpackb(wire.encode_reply(wire.create_response("r", (1, 2))))["result"] == [1, 2]


def test_oversized_message_is_refused():
    with pytest.raises(wire.EncodeError):
        wire.encode({"b": b"x" * 100}, max_size=50)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xc1\xc1garbage", "undecodable"),
        (b"", "undecodable"),
        (msgpack.packb([1, 2, 3]), "not-a-map"),
        (packed(call(app="comlink_ipc_v3")), "wrong-app"),
        (packed({"app": wire.APP_ID, "id": "x"}), "missing-type"),
        (packed(call(id=None)), "missing-id"),
        (packed(call(id="")), "missing-id"),
        (packed(call(function=None)), "missing-function"),
        (packed(call(function="")), "missing-function"),
        (packed(call(args="nope")), "bad-args"),
        (packed(call(namespace=5)), "bad-namespace"),
        (packed({"app": wire.APP_ID, "id": "x", "type": "teleport"}), "unknown-type"),
        (packed({"app": wire.APP_ID, "id": "x", "type": "stdout"}), "bad-output"),
        (packed({"app": wire.APP_ID, "type": "heartbeat"}), "missing-id"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason_never_raised(payload, reason):
    parsed = wire.parse_frame(payload)
    assert isinstance(parsed, wire.Rejected)
    assert parsed.reason == reason


def test_rejected_call_keeps_a_readable_id_so_it_can_be_answered():
    parsed = wire.parse_frame(packed(call(function=None)))
    assert parsed.id == "c1" and wire.INVALID_CALL_TEXT[parsed.reason].startswith("InvalidMessageError:")


def test_call_defaults_and_unknown_fields():
    parsed = wire.parse_frame(packed({"app": wire.APP_ID, "id": "c", "type": "call", "timestamp": 1, "function": "f",
                                      "clientName": "js", "namespace": None, "future_field": {"x": 1}}))
    assert parsed["args"] == [] and parsed["namespace"] == "default" and parsed["client_name"] == "js"
    assert parsed["future_field"] == {"x": 1}
    response = wire.parse_frame(packed({"app": wire.APP_ID, "id": "r", "type": "response"}))
    assert response["result"] is None


def test_oversized_payload_is_undecodable():
    assert wire.parse_frame(packed(call()), max_size=10).reason == "undecodable"
