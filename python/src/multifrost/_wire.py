"""The comlink_ipc_v4 wire: message builders, msgpack encoding and frame validation.

Pure functions, no I/O. Mirrors src/wire/*.ts of the TypeScript side (docs/wire.md).
"""

from __future__ import annotations

import itertools
import os
import time
import traceback
import types
from dataclasses import dataclass
from typing import Any, Final

import msgpack

APP_ID: Final = "comlink_ipc_v4"
DEFAULT_NAMESPACE: Final = "default"
ENV_PORT: Final = "COMLINK_ZMQ_PORT"
# Our extension: the parent's private endpoint (ipc:// in a directory only its user can enter),
# preferred over COMLINK_ZMQ_PORT when set; v4 parents do not set it.
ENV_ENDPOINT: Final = "MULTIFROST_ZMQ_ENDPOINT"
MIN_PORT: Final = 1024
MAX_PORT: Final = 65535
#: Largest message accepted or sent (bytes); the socket refuses larger ones too.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024

KNOWN_TYPES: Final = frozenset(
    {"call", "response", "error", "stdout", "stderr", "heartbeat", "shutdown", "cancel", "chunk", "credit"}
)

# Ids: 32 hex digits (uuid4().hex form), a random prefix per process plus a counter.
_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count(1)


def next_message_id() -> str:
    """A fresh message id, unique in this process: 16 random hex digits and a 16-digit counter."""
    return f"{_id_prefix}{next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _now() -> float:
    return time.time()


def create_response(msg_id: str, result: Any) -> dict[str, Any]:
    """A response always carries `result` (nil for None), unlike Python v4 which drops it."""
    return {"app": APP_ID, "id": msg_id, "type": "response", "timestamp": _now(), "result": result}


def create_error(msg_id: str, error: str, stack: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"app": APP_ID, "id": msg_id, "type": "error", "timestamp": _now(), "error": error}
    if stack is not None:
        message["stack"] = stack
    return message


def create_chunk(msg_id: str, seq: int, value: Any) -> dict[str, Any]:
    """One value of a streamed call (docs/wire.md, Streaming): the call's id, `seq` from 0."""
    return {"app": APP_ID, "id": msg_id, "type": "chunk", "timestamp": _now(), "seq": seq, "value": value}


def create_output(stream: str, output: str) -> dict[str, Any]:
    return {"app": APP_ID, "id": next_message_id(), "type": stream, "timestamp": _now(), "output": output}


def create_heartbeat_reply(request: dict[str, Any]) -> dict[str, Any]:
    """Same id; the request's metadata kept (JS v4 reads hb_timestamp) plus hb_response (Python v4)."""
    metadata = request.get("metadata")
    reply_metadata = dict(metadata) if isinstance(metadata, dict) else {}
    reply_metadata["hb_response"] = True
    return {"app": APP_ID, "id": request["id"], "type": "heartbeat", "timestamp": _now(), "metadata": reply_metadata}


def format_exception(exc: BaseException) -> tuple[str, str]:
    """`("<Type>: <message>", traceback)` for an exception raised by a handler."""
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}", stack


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


class EncodeError(ValueError):
    """A value msgpack cannot carry to the other side (the call gets an error reply instead)."""


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType)):
        raise TypeError(
            f"cannot send a value of type {type(value).__name__}: a generator's values are sent "
            "only to a streamed call (handle.stream.<fn>(...) in TypeScript)"
        )
    raise TypeError(f"cannot send a value of type {type(value).__name__}")


def check_keys(value: Any, where: str = "result") -> None:
    """Refuses maps with non-string keys anywhere in `value` (Python v4 peers reject the whole message)."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise EncodeError(f"{path} has a map key of type {type(key).__name__} ({key!r}); only string keys can be sent")
                if isinstance(child, (dict, list, tuple)):
                    stack.append((child, f"{path}.{key}"))
        elif isinstance(item, (list, tuple)):
            for index, child in enumerate(item):
                if isinstance(child, (dict, list, tuple)):
                    stack.append((child, f"{path}[{index}]"))


def encode(message: dict[str, Any], max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
    """msgpack with bin for bytes and str for text; ints up to 64 bits as int/uint (never float).

    Raises EncodeError for values msgpack cannot carry (ints beyond 64 bits, unknown types,
    non-string map keys) and for messages larger than `max_size`.
    """
    try:
        data = msgpack.packb(message, use_bin_type=True, default=_default, datetime=False)
    except OverflowError as exc:
        raise EncodeError(f"integer out of the 64-bit range msgpack can carry: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise EncodeError(str(exc)) from exc
    if len(data) > max_size:
        raise EncodeError(f"message of {len(data)} bytes exceeds the limit of {max_size} bytes")
    return data


def encode_reply(message: dict[str, Any], max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
    """Encodes a response; a result that cannot be sent becomes an error reply (never a lost call)."""
    try:
        if message.get("type") == "response":
            check_keys(message.get("result"))
        return encode(message, max_size)
    except EncodeError as exc:
        return encode(create_error(message["id"], f"EncodeError: {exc}"), max_size)


def encode_chunk(msg_id: str, seq: int, value: Any, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
    """Encodes one `chunk`; raises EncodeError for a value that cannot be sent (as a result could not)."""
    check_keys(value)
    return encode(create_chunk(msg_id, seq, value), max_size)


# --------------------------------------------------------------------------------------------
# Decoding and validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A frame that failed validation; `id` is set when it was readable."""

    reason: str
    id: str | None = None
    type: str | None = None


def decode(payload: bytes, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Any:
    """One msgpack value; str as str, bin as bytes, any hashable map key accepted.

    Raises ValueError for a payload over `max_size` bytes (msgpack's own limits scale with it).
    """
    if len(payload) > max_size:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {max_size}")
    return msgpack.unpackb(payload, raw=False, strict_map_key=False)


def parse_frame(payload: bytes, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> dict[str, Any] | Rejected:
    """Decodes and validates one payload without ever raising (mirrors src/wire/validate.ts).

    Fills the defaults v4 peers rely on: missing `args` -> [], missing or nil `namespace` ->
    "default", `clientName` (JS v4) read as `client_name`, missing `result` -> None.
    """
    try:
        decoded = decode(payload, max_size)
    except Exception:  # noqa: BLE001 - any decoding failure is a bad frame, never a crash
        return Rejected("undecodable")
    if not isinstance(decoded, dict):
        return Rejected("not-a-map")
    message: dict[str, Any] = decoded
    raw_id = message.get("id")
    msg_id = raw_id if isinstance(raw_id, str) and raw_id != "" else None
    raw_type = message.get("type")
    msg_type = raw_type if isinstance(raw_type, str) else None
    if message.get("app") != APP_ID:
        return Rejected("wrong-app", msg_id, msg_type)
    if msg_type is None:
        return Rejected("missing-type", msg_id)
    if msg_type == "call":
        if msg_id is None:
            return Rejected("missing-id", None, msg_type)
        function = message.get("function")
        if not isinstance(function, str) or function == "":
            return Rejected("missing-function", msg_id, msg_type)
        args = message.get("args")
        if args is None:
            message["args"] = []
        elif not isinstance(args, list):
            return Rejected("bad-args", msg_id, msg_type)
        namespace = message.get("namespace")
        if namespace is None:
            message["namespace"] = DEFAULT_NAMESPACE
        elif not isinstance(namespace, str):
            return Rejected("bad-namespace", msg_id, msg_type)
        if message.get("client_name") is None and isinstance(message.get("clientName"), str):
            message["client_name"] = message["clientName"]
        metadata = message.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            del message["metadata"]
        if "stream" in message and stream_credit(message["stream"]) is None:
            del message["stream"]  # not a stream request we understand: a plain call
    elif msg_type in ("response", "error"):
        if msg_id is None:
            return Rejected("missing-id", None, msg_type)
        if msg_type == "response":
            message.setdefault("result", None)
    elif msg_type in ("stdout", "stderr"):
        if message.get("output") is None:
            return Rejected("bad-output", msg_id, msg_type)
    elif msg_type == "heartbeat":
        if msg_id is None:
            return Rejected("missing-id", None, msg_type)
        if "metadata" in message and not isinstance(message["metadata"], dict):
            del message["metadata"]
    elif msg_type == "shutdown":
        pass
    elif msg_type == "cancel":  # Multifrost extension (docs/wire.md, Cancellation)
        if msg_id is None:
            return Rejected("missing-id", None, msg_type)
    elif msg_type == "credit":  # Multifrost extension (docs/wire.md, Streaming)
        if msg_id is None:
            return Rejected("missing-id", None, msg_type)
        if not _is_count(message.get("n")):
            return Rejected("bad-credit", msg_id, msg_type)
    elif msg_type == "chunk":
        if msg_id is None:
            return Rejected("missing-id", None, msg_type)
        if not _is_count(message.get("seq")):
            return Rejected("bad-chunk", msg_id, msg_type)
        message.setdefault("value", None)
    else:
        return Rejected("unknown-type", msg_id, msg_type)
    return message


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def stream_credit(stream: Any) -> int | None:
    """The initial credit of a call's `stream` field, or None when it is not `{credit: <int >= 0>}`."""
    if not isinstance(stream, dict):
        return None
    credit = stream.get("credit")
    return credit if _is_count(credit) else None


INVALID_CALL_TEXT: Final = {
    "missing-function": "InvalidMessageError: Message missing 'function' field",
    "bad-args": "InvalidMessageError: 'args' must be an array",
    "bad-namespace": "InvalidMessageError: 'namespace' must be a string",
}
