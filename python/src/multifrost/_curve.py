"""CURVE for connect mode, as src/actors/curve.ts has it: key pairs, key files, and which client
keys a service admits.

Keys are Z85 text (40 characters for 32 bytes), as zeromq, pyzmq, `curve_keygen` and `multifrost
keygen` print them. The keys directory is `$MULTIFROST_KEYS_DIR`, else ~/.multifrost/keys; a key
pair `<name>` is `<name>.pub` (the public key, one line) and `<name>.key` (the secret key, 0600),
and `authorized_keys` lists the admitted client keys, one a line, `#` starting a comment — the
files `multifrost keygen` writes and the TS ChildWorker reads.

Where this is stricter than curve.ts (say so in the docs, never silently):
  - the public key must belong to the secret key (a wrong pair would publish a key no client can
    complete a handshake with);
  - an `authorized_keys` that exists but cannot be read or has a bad line is an error (curve.ts
    then admits every CURVE client); only a missing file means "any CURVE client".
Key files may start with a UTF-8 byte order mark (as curve.ts reads them too). A `#` inside a key
is part of it, as in curve.ts. No error message ever shows a secret key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import zmq

KEYS_DIR_ENV: Final = "MULTIFROST_KEYS_DIR"
AUTHORIZED_KEYS_FILE: Final = "authorized_keys"
Z85_KEY: Final = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")  # fullmatch only
_Z85_CHARS: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE: Final = {char: index for index, char in enumerate(_Z85_CHARS)}
_KEY_NAME: Final = re.compile(r"[\w.-]+", re.ASCII)  # fullmatch only
#: The `curve=` mapping's keys: Python's names, and the TS option's (a config shared with TS).
_PUBLIC: Final = ("public_key", "publicKey")
_SECRET: Final = ("secret_key", "secretKey")
_AUTHORIZED: Final = ("authorized_keys", "authorizedKeys")


@dataclass(frozen=True)
class ServiceCurve:
    """A service's CURVE settings, checked: its key pair and the client keys it admits."""

    public_key: str
    secret_key: str
    #: None: any CURVE client; else only these public keys (an empty set admits nobody).
    authorized_keys: frozenset[str] | None = None

    def admits(self, mechanism: bytes, credentials: list[bytes]) -> str | None:
        """None to admit the client, else why not (the ZAP status text). The handshake already
        proved that the client holds the secret key of the public key it shows."""
        if mechanism != b"CURVE":
            return f"CURVE required, got {mechanism.decode(errors='replace')}"
        if self.authorized_keys is None:
            return None
        key = credentials[0] if credentials else b""
        if len(key) != 32:
            return "no client key"
        text = z85_encode(key)
        return None if text in self.authorized_keys else f"client key {text} is not authorized"

    def __repr__(self) -> str:  # never print the secret key
        admitted = "any CURVE client" if self.authorized_keys is None else f"{len(self.authorized_keys)} authorized keys"
        return f"ServiceCurve(public_key={self.public_key!r}, {admitted})"


def keys_dir(dir: str | os.PathLike[str] | None = None) -> str:
    """Where key files live: `dir`, else `$MULTIFROST_KEYS_DIR`, else ~/.multifrost/keys."""
    if dir is not None:
        return os.fspath(dir)
    return os.environ.get(KEYS_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".multifrost", "keys")


def check_z85_key(key: object, what: str) -> str:
    """`key` if it is a 40-character Z85 CURVE key, else ValueError naming `what`."""
    if not isinstance(key, str) or Z85_KEY.fullmatch(key) is None or not _z85_decodable(key):
        got = f"{len(key)} characters" if isinstance(key, str) else type(key).__name__
        if isinstance(key, str) and len(key) == 40:
            got = "40 characters that are not Z85"
        raise ValueError(f"{what} must be a 40-character Z85 CURVE key, got {got}")
    return key


def curve_key_pair() -> dict[str, str]:
    """A fresh key pair, `{"public_key": …, "secret_key": …}` (Z85), ready for `curve=`."""
    _require_curve()
    public, secret = zmq.curve_keypair()
    return {"public_key": public.decode("ascii"), "secret_key": secret.decode("ascii")}


def save_curve_keys(name: str, pair: Mapping[str, str], dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Writes `<name>.pub` (0644) and `<name>.key` (0600) in the keys directory (made 0700), as
    `multifrost keygen` does; returns `{"public_file", "secret_file"}`. Replaces existing files."""
    _check_key_name(name)
    public = check_z85_key(_pick(pair, _PUBLIC, "pair"), "public_key")
    secret = check_z85_key(_pick(pair, _SECRET, "pair"), "secret_key")
    folder = keys_dir(dir)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    public_file = os.path.join(folder, f"{name}.pub")
    secret_file = os.path.join(folder, f"{name}.key")
    _write(public_file, public, 0o644)
    _write(secret_file, secret, 0o600)
    return {"public_file": public_file, "secret_file": secret_file}


def load_curve_keys(name: str, dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The key pair `name` from the keys directory, `{"public_key", "secret_key"}`. ValueError
    for a bad name, a missing or unreadable file, or a file that holds no Z85 key."""
    _check_key_name(name)
    public_file, secret_file = (os.path.join(keys_dir(dir), f"{name}{ending}") for ending in (".pub", ".key"))
    return {
        "public_key": check_z85_key(_read_key_file(public_file), public_file),
        "secret_key": check_z85_key(_read_secret_key_file(secret_file), secret_file),
    }


def _read_secret_key_file(path: str) -> str:
    """A secret key others can read is no secret (as ssh refuses such a key)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # _read_key_file says why it cannot be read
    if mode is not None and mode & 0o077 and os.name == "posix":
        raise ValueError(f"CURVE secret key file {path} is accessible to group or others (mode {mode & 0o777:04o}): chmod 600 it")
    return _read_key_file(path)


def load_authorized_keys(dir: str | os.PathLike[str] | None = None) -> list[str] | None:
    """The public keys in `<keys dir>/authorized_keys`, or None when there is no such file.
    ValueError for an unreadable file or a bad line.

    One key a line; `#` starts a comment at the start of a line or after the key and a space. Z85
    has `#` among its characters (about one key in three holds one), so a `#` inside a key is part
    of it; no key starts with one (85**4 * 84 > 2**32 - 1)."""
    path = os.path.join(keys_dir(dir), AUTHORIZED_KEYS_FILE)
    if not os.path.lexists(path):
        return None
    keys: list[str] = []
    for number, line in enumerate(_read_key_file(path).split("\n"), 1):
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue  # blank, or a comment
        if len(words) == 2 and not words[1].startswith("#"):
            raise ValueError(f"{path} line {number}: one key a line, then nothing or a # comment")
        keys.append(check_z85_key(words[0], f"{path} line {number}"))
    return keys


def resolve_service_curve(option: Mapping[str, Any] | str, dir: str | os.PathLike[str] | None = None) -> ServiceCurve:
    """A service's `curve=` option, checked: a key pair mapping (`public_key`, `secret_key`,
    optional `authorized_keys`; the TS names `publicKey`, `secretKey`, `authorizedKeys` too), or
    the name of a key pair in the keys directory (its `authorized_keys`, if there is one, lists
    the admitted clients). ValueError names what is wrong."""
    _require_curve()
    if isinstance(option, str):
        if _looks_like_key(option) and not os.path.exists(os.path.join(keys_dir(dir), f"{option}.pub")):
            _check_key_name(option, "curve")  # says it looks like a key, without showing it
        shown = "<a 40-character name>" if _looks_like_key(option) else repr(option)
        try:
            pair = load_curve_keys(option, dir)
            _check_pair(pair["public_key"], pair["secret_key"], f"{option}.pub", f"{option}.key")
            authorized = load_authorized_keys(dir)
        except ValueError as exc:
            raise ValueError(f"curve={shown}: {exc}") from None
        return ServiceCurve(pair["public_key"], pair["secret_key"], None if authorized is None else frozenset(authorized))
    if not isinstance(option, Mapping):
        raise ValueError(
            "curve must be a key pair {'public_key', 'secret_key', 'authorized_keys'?} or the name of one "
            f"in the keys directory (got {type(option).__name__})"
        )
    unknown = set(option) - {*_PUBLIC, *_SECRET, *_AUTHORIZED}
    if unknown:
        raise ValueError(f"curve has unknown keys {sorted(map(str, unknown))} (known: public_key, secret_key, authorized_keys)")
    public = check_z85_key(_pick(option, _PUBLIC, "curve"), "curve.public_key")
    secret = check_z85_key(_pick(option, _SECRET, "curve"), "curve.secret_key")
    _check_pair(public, secret, "curve.public_key", "curve.secret_key")
    if not any(name in option for name in _AUTHORIZED):
        return ServiceCurve(public, secret, None)  # only a missing key means "any CURVE client"
    given = _pick(option, _AUTHORIZED, "curve", required=False)
    if given is None:
        raise ValueError(
            "curve.authorized_keys is None: give a list of Z85 public keys ([] admits nobody), "
            "or leave authorized_keys out to admit any CURVE client"
        )
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise ValueError(f"curve.authorized_keys must be a list of Z85 public keys (got {type(given).__name__})")
    authorized = [check_z85_key(key, f"curve.authorized_keys[{index}]") for index, key in enumerate(given)]
    return ServiceCurve(public, secret, frozenset(authorized))


def z85_encode(data: bytes) -> str:
    """Z85 (ZeroMQ RFC 32) of bytes whose length is a multiple of 4."""
    out: list[str] = []
    for start in range(0, len(data), 4):
        value = int.from_bytes(data[start : start + 4], "big")
        chunk = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            chunk.append(_Z85_CHARS[digit])
        out.extend(reversed(chunk))
    return "".join(out)


# -- internals --------------------------------------------------------------------------------------


def _z85_decodable(text: str) -> bool:
    """Every 5 characters must stand for 4 bytes (some 5-character groups exceed 2**32 - 1)."""
    for start in range(0, len(text), 5):
        value = 0
        for char in text[start : start + 5]:
            value = value * 85 + _Z85_VALUE[char]
        if value > 0xFFFFFFFF:
            return False
    return True


def _check_pair(public: str, secret: str, public_name: str, secret_name: str) -> None:
    derived = zmq.curve_public(secret.encode("ascii")).decode("ascii")
    if derived != public:
        raise ValueError(f"{public_name} is not the public key of {secret_name} (that is {derived}): the key pair does not match")


def _pick(mapping: Mapping[str, Any], names: tuple[str, str], what: str, *, required: bool = True) -> Any:
    present = [name for name in names if name in mapping]
    if len(present) == 2:
        raise ValueError(f"{what} gives both {names[0]} and {names[1]}: give one")
    if not present:
        if required:
            raise ValueError(f"{what} needs {names[0]} (a 40-character Z85 key)")
        return None
    return mapping[present[0]]


def _read_key_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as file:  # a byte order mark is not part of the key
            return file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read CURVE key file {path}: {reason}") from None


def _write(path: str, key: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an existing file keeps its mode through O_CREAT
        view = memoryview(f"{key}\n".encode("ascii"))
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _looks_like_key(value: str) -> bool:
    """40 Z85 characters: a key, maybe a secret one, that must never be shown."""
    return Z85_KEY.fullmatch(value.strip()) is not None


def _check_key_name(name: object, option: str | None = None) -> None:
    """A key pair's name; `option` ("curve") prefixes the message when the name came from one."""
    where = f"{option}=: " if option else ""
    if isinstance(name, str) and _looks_like_key(name) and (option or _KEY_NAME.fullmatch(name) is None):
        raise ValueError(  # never echo it: it may be a secret key given where a name goes
            f"{where}this string looks like a 40-character Z85 key, not a key name: give a key pair "
            "{'public_key': …, 'secret_key': …}, or the name of a key pair in the keys directory"
        )
    if not isinstance(name, str) or _KEY_NAME.fullmatch(name) is None or name.startswith("."):
        shown = repr(name) if isinstance(name, str) and len(name) <= 64 else f"{len(name)} characters" if isinstance(name, str) else type(name).__name__
        raise ValueError(f"{where}a key name must be letters, digits, '.', '-' or '_' (not starting with '.'), got {shown}")


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise RuntimeError(f"this libzmq ({zmq.zmq_version()}) was built without CURVE: install one with libsodium")
