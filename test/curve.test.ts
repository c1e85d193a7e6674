import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ChildWorker, curveKeyPair, InvalidArgumentError, loadAuthorizedKeys, loadCurveKeys, saveCurveKeys, WorkerStartError } from "../src/index.js";
import { fixture, rejectionOf } from "./helpers/fixtures.js";
import { serviceHarness } from "./helpers/services.js";

const SERVICE = fixture("curve-service.mjs");
const PY_CLIENT = fixture("curve_client.py");
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const harness = serviceHarness("mf-curve-");
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const server = curveKeyPair();
const alice = curveKeyPair();
const mallory = curveKeyPair();

async function curveService(id: string, authorized?: string[]): Promise<number> {
  await harness.startService(id, process.execPath, [SERVICE], {
    MF_SERVICE_ID: id,
    MF_CURVE_PUBLIC: server.publicKey,
    MF_CURVE_SECRET: server.secretKey,
    ...(authorized ? { MF_AUTHORIZED: authorized.join(",") } : {}),
  });
  const entry = await harness.registry.lookup(id);
  expect(entry?.publicKey).toBe(server.publicKey); // published for clients, ignored by v4 peers
  return entry!.port;
}

describe("CURVE for connect mode", () => {
  it("an authorized client calls the service, taking the server key from the registry", async () => {
    await curveService("vault", [alice.publicKey]);
    const worker = await harness.connect("vault", 5000, { curve: alice });
    await worker.start();
    expect(await worker.call.add(2, 3)).toBe(5);
  });

  it("an unauthorized client gets a clear WorkerStartError at once, not at its startup timeout", async () => {
    await curveService("vault", [alice.publicKey]);
    const worker = await harness.connect("vault", 5000, { curve: mallory, startupTimeoutMs: 20_000 });
    const started = Date.now();
    const error = await rejectionOf(worker.start());
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toMatch(/refused the connection/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a plain client is refused: the parent says the service requires CURVE, and a raw plain client gets nothing", async () => {
    const port = await curveService("vault");
    const worker = await harness.connect("vault", 5000, { startupTimeoutMs: 2000 });
    const error = await rejectionOf(worker.start());
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toMatch(/requires CURVE/);
    // A client that ignores the registry's hint and speaks plain zeromq: no handshake, no reply.
    const plain = spawnSync(PYTHON, ["-c", RAW_PLAIN_CLIENT, String(port)], { encoding: "utf8", timeout: 10_000 });
    expect(plain.stdout.trim()).toBe("TIMEOUT");
  });

  it("with no authorized list, any CURVE client is served; the wrong server key is refused", async () => {
    await curveService("open-vault");
    const worker = await harness.connect("open-vault", 5000, { curve: mallory });
    await worker.start();
    expect(await worker.call.add(1, 1)).toBe(2);
    const impostorKey = curveKeyPair().publicKey;
    const wrong = await harness.connect("open-vault", 5000, { curve: { ...alice, serverPublicKey: impostorKey }, startupTimeoutMs: 3000 });
    expect(await rejectionOf(wrong.start())).toBeInstanceOf(WorkerStartError);
  });

  it("a Python (pyzmq) CURVE client with an authorized key calls the service", async () => {
    const port = await curveService("vault", [alice.publicKey]);
    const ok = spawnSync(PYTHON, [PY_CLIENT, String(port), server.publicKey, alice.publicKey, alice.secretKey], { encoding: "utf8", timeout: 15_000 });
    expect(ok.stdout.trim(), ok.stderr).toBe("5");
    const refused = spawnSync(PYTHON, [PY_CLIENT, String(port), server.publicKey, mallory.publicKey, mallory.secretKey], { encoding: "utf8", timeout: 15_000 });
    expect(refused.stdout.trim(), refused.stderr).toBe("TIMEOUT");
  });

  it("keys from files: saveCurveKeys writes the secret 0600, a service and a client load them by name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-keys-"));
    dirs.push(dir);
    saveCurveKeys("svc", server, dir);
    saveCurveKeys("alice", alice, dir);
    writeFileSync(join(dir, "authorized_keys"), `# clients\n${alice.publicKey}\n`);
    expect(statSync(join(dir, "svc.key")).mode & 0o777).toBe(0o600);
    expect(loadCurveKeys("alice", dir)).toEqual(alice);
    chmodSync(join(dir, "alice.key"), 0o644);
    expect(() => loadCurveKeys("alice", dir)).toThrow(/alice\.key is accessible to group or others \(mode 0644\): chmod 600 it/);
    chmodSync(join(dir, "alice.key"), 0o600);
    await harness.startService("filed", process.execPath, [SERVICE], { MF_SERVICE_ID: "filed", MF_CURVE_NAME: "svc", MULTIFROST_KEYS_DIR: dir });
    const worker = await harness.connect("filed", 5000, { curve: { ...loadCurveKeys("alice", dir) } });
    await worker.start();
    expect(await worker.call.add(20, 22)).toBe(42);
  });

  it("authorized_keys: a key with '#' in it is a key, not a comment; a stranger stays out; a bad line is an error, never 'anyone'", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-keys-"));
    dirs.push(dir);
    let hashed = curveKeyPair();
    while (!hashed.publicKey.slice(1).includes("#")) hashed = curveKeyPair(); // '#' is a Z85 character
    saveCurveKeys("svc", server, dir);
    writeFileSync(join(dir, "authorized_keys"), `# clients\n${hashed.publicKey}   # bob's laptop\n\n`);
    expect(loadAuthorizedKeys(dir)).toEqual([hashed.publicKey]);
    await harness.startService("hashed", process.execPath, [SERVICE], { MF_SERVICE_ID: "hashed", MF_CURVE_NAME: "svc", MULTIFROST_KEYS_DIR: dir });
    const bob = await harness.connect("hashed", 5000, { curve: hashed });
    await bob.start();
    expect(await bob.call.add(2, 2)).toBe(4);
    const stranger = await harness.connect("hashed", 5000, { curve: mallory, startupTimeoutMs: 5000 });
    expect(await rejectionOf(stranger.start())).toBeInstanceOf(WorkerStartError);

    writeFileSync(join(dir, "authorized_keys"), `${alice.publicKey}\nnot-a-key\n`);
    expect(() => loadAuthorizedKeys(dir)).toThrow(/authorized_keys line 2/);
    class Service extends ChildWorker {}
    const keysDirBefore = process.env["MULTIFROST_KEYS_DIR"];
    process.env["MULTIFROST_KEYS_DIR"] = dir;
    try {
      expect(() => new Service({ serviceId: "typo", curve: "svc" })).toThrow(/authorized_keys line 2/);
    } finally {
      if (keysDirBefore === undefined) delete process.env["MULTIFROST_KEYS_DIR"];
      else process.env["MULTIFROST_KEYS_DIR"] = keysDirBefore;
    }
    const empty = mkdtempSync(join(tmpdir(), "mf-nokeys-"));
    dirs.push(empty);
    expect(loadAuthorizedKeys(empty)).toBeUndefined();
  });

  it("a non-loopback bind without CURVE is refused unless insecure: true", () => {
    class Service extends ChildWorker {}
    expect(() => new Service({ serviceId: "open", host: "0.0.0.0" })).toThrow(InvalidArgumentError);
    expect(() => new Service({ serviceId: "open", host: "0.0.0.0", insecure: true })).not.toThrow();
    expect(() => new Service({ serviceId: "open", host: "0.0.0.0", curve: server })).not.toThrow();
  });

  it("advertise must be an address parents can reach: not a wildcard, not garbage", () => {
    class Service extends ChildWorker {}
    expect(() => new Service({ serviceId: "s", host: "0.0.0.0", advertise: "0.0.0.0", curve: server })).toThrow(/not the wildcard/);
    expect(() => new Service({ serviceId: "s", advertise: "tcp://10.0.0.7:5" })).toThrow(InvalidArgumentError);
    expect(() => new Service({ serviceId: "s", advertise: "node-a.example" })).not.toThrow();
  });
});

const RAW_PLAIN_CLIENT = `
import sys, time, uuid, msgpack, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.DEALER); s.setsockopt(zmq.LINGER, 0)
s.connect(f"tcp://127.0.0.1:{sys.argv[1]}")
s.send_multipart([b"", msgpack.packb({"app": "comlink_ipc_v4", "id": str(uuid.uuid4()), "type": "call", "timestamp": time.time(), "function": "add", "args": [1, 2], "namespace": "default"})])
print(msgpack.unpackb(s.recv_multipart()[-1])["result"] if s.poll(2000) else "TIMEOUT")
`;
