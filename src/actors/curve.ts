import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as zmq from "zeromq";
import { InvalidArgumentError } from "../errors.js";
import type { ZapPolicy } from "./zap.js";

/**
 * CURVE for connect mode (DESIGN §6a): key pairs, key files, and the ZAP policy of a service
 * that admits only authorized client keys. Keys are Z85 text (40 characters for 32 bytes), as
 * zeromq, pyzmq and `curve_keygen` print them.
 */

export interface CurveKeyPair {
  /** Z85, 40 characters. */
  readonly publicKey: string;
  /** Z85, 40 characters. Keep it secret: it is the service's (or client's) identity. */
  readonly secretKey: string;
}

/** Where key files live when no directory is given: `$MULTIFROST_KEYS_DIR`, else `~/.multifrost/keys`. */
export const KEYS_DIR_ENV = "MULTIFROST_KEYS_DIR";

/** A fresh CURVE key pair. */
export function curveKeyPair(): CurveKeyPair {
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { publicKey, secretKey };
}

export function keysDir(dir?: string): string {
  return dir ?? process.env[KEYS_DIR_ENV] ?? join(homedir(), ".multifrost", "keys");
}

const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

export function checkZ85Key(key: unknown, what: string): string {
  if (typeof key !== "string" || !Z85_KEY.test(key)) {
    throw new InvalidArgumentError(`${what} must be a 40-character Z85 CURVE key, got ${typeof key === "string" ? `${key.length} characters` : typeof key}`);
  }
  return key;
}

/** Writes `<name>.pub` (0644) and `<name>.key` (the secret key, 0600) in the keys directory (0700). */
export function saveCurveKeys(name: string, pair: CurveKeyPair, dir?: string): { publicFile: string; secretFile: string } {
  checkKeyName(name);
  const folder = keysDir(dir);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const publicFile = join(folder, `${name}.pub`);
  const secretFile = join(folder, `${name}.key`);
  writeFileSync(publicFile, `${checkZ85Key(pair.publicKey, "publicKey")}\n`, { mode: 0o644 });
  writeFileSync(secretFile, `${checkZ85Key(pair.secretKey, "secretKey")}\n`, { mode: 0o600 });
  chmodSync(secretFile, 0o600);
  return { publicFile, secretFile };
}

/** Reads the key pair `name` written by `saveCurveKeys` (or `multifrost keygen`). */
export function loadCurveKeys(name: string, dir?: string): CurveKeyPair {
  checkKeyName(name);
  const folder = keysDir(dir);
  return {
    publicKey: checkZ85Key(readKeyFile(join(folder, `${name}.pub`)), `${name}.pub`),
    secretKey: checkZ85Key(readSecretKeyFile(join(folder, `${name}.key`)), `${name}.key`),
  };
}

/** A secret key others can read is no secret (as ssh refuses such a key): refused, with the fix. */
function readSecretKeyFile(file: string): string {
  let mode: number | undefined;
  try {
    mode = statSync(file).mode;
  } catch {
    // readKeyFile says why it cannot be read
  }
  if (mode !== undefined && (mode & 0o077) !== 0 && process.platform !== "win32") {
    throw new InvalidArgumentError(`CURVE secret key file ${file} is accessible to group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): chmod 600 it`);
  }
  return readKeyFile(file);
}

/**
 * The Z85 public keys in `<keys dir>/authorized_keys`, one a line; undefined when there is no such
 * file (then any CURVE client is admitted). A comment is a line starting with `#`, or what follows
 * whitespace after the key: `#` is one of Z85's characters, so it may be inside a key. A line that
 * is not a key fails the whole file (InvalidArgumentError): a typo must never widen who gets in.
 */
export function loadAuthorizedKeys(dir?: string): string[] | undefined {
  const file = join(keysDir(dir), "authorized_keys");
  if (!existsSync(file)) return undefined;
  const keys: string[] = [];
  readKeyFile(file)
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      keys.push(checkZ85Key(line.split(/\s/, 1)[0]!, `${file} line ${i + 1}`));
    });
  return keys;
}

/**
 * The ZAP policy of a CURVE service: the client must speak CURVE (the handshake already proved it
 * holds the secret key of the public key it shows); with `authorizedKeys`, that public key must be
 * one of them.
 */
export function curveServerPolicy(authorizedKeys: readonly string[] | undefined): ZapPolicy {
  const allowed = authorizedKeys && new Set(authorizedKeys);
  return (request) => {
    if (request.mechanism !== "CURVE") return `CURVE required, got ${request.mechanism}`;
    if (allowed === undefined) return true;
    const key = request.credentials[0];
    if (key === undefined || key.length !== 32) return "no client key";
    const text = z85Encode(key);
    return allowed.has(text) ? true : `client key ${text} is not authorized`;
  };
}

const Z85_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** Z85 (ZeroMQ RFC 32) of bytes whose length is a multiple of 4. */
export function z85Encode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!;
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85_CHARS[value % 85]!);
      value = Math.floor(value / 85);
    }
    out += chunk.join("");
  }
  return out;
}

function readKeyFile(file: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (error) {
    throw new InvalidArgumentError(`cannot read CURVE key file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function checkKeyName(name: string): void {
  if (typeof name !== "string" || !/^[\w.-]+$/.test(name) || name.startsWith(".")) {
    throw new InvalidArgumentError(`a key name must be letters, digits, '.', '-' or '_' (not starting with '.'), got ${JSON.stringify(name)}`);
  }
}

/** A service's CURVE settings: its key pair, and the client keys it admits (none given: any CURVE client). */
export interface ServiceCurveOptions extends CurveKeyPair {
  readonly authorizedKeys?: readonly string[];
}

/** A client's CURVE settings: its key pair, and the service's public key (default: from the registry entry). */
export interface ClientCurveOptions extends CurveKeyPair {
  readonly serverPublicKey?: string;
}

/**
 * Resolves a service's `curve` option — the settings, or the name of a key pair in the keys
 * directory (then `authorized_keys` there, if present, lists the admitted clients) — and refuses a
 * non-loopback bind without CURVE unless `insecure`.
 */
export function resolveServiceCurve(
  option: ServiceCurveOptions | string | undefined,
  host: string,
  insecure: boolean,
  dir?: string,
): ServiceCurveOptions | undefined {
  if (option === undefined) {
    if (!insecure && !isLoopback(host)) {
      throw new InvalidArgumentError(`binding ${host} (not loopback) without CURVE would let any host call this service: give curve keys, or insecure: true`);
    }
    return undefined;
  }
  if (typeof option === "string") {
    const pair = loadCurveKeys(option, dir);
    // No authorized_keys file: any CURVE client. One that cannot be read or parsed: an error, never "anyone".
    return { ...pair, authorizedKeys: loadAuthorizedKeys(dir) };
  }
  checkZ85Key(option.publicKey, "curve.publicKey");
  checkZ85Key(option.secretKey, "curve.secretKey");
  option.authorizedKeys?.forEach((key, i) => checkZ85Key(key, `curve.authorizedKeys[${i}]`));
  return option;
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
