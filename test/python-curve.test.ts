import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { curveKeyPair, loadCurveKeys, saveCurveKeys, WorkerStartError } from "../src/index.js";
import { rejectionOf } from "./helpers/fixtures.js";
import { descendants, waitFor } from "./helpers/processes.js";
import { serviceHarness } from "./helpers/services.js";

/**
 * A Python-library CURVE service (test/fixtures/python-lib/curve_service.py, run by Debian's
 * /usr/bin/python3 with PYTHONPATH at python/src, as in python-library.test.ts) called by TS
 * parents, as test/curve.test.ts does with a TS service: the server key comes from the registry
 * entry; an unauthorized key fails the start at once; a plain parent is told CURVE is required.
 * Registries and key directories are temporary; every process is reaped after each test.
 */
const PYTHON = process.env.MULTIFROST_PYTHON ?? "/usr/bin/python3";
const PY_SRC = fileURLToPath(new URL("../python/src", import.meta.url));
const PY_SERVICE = fileURLToPath(new URL("./fixtures/python-lib/curve_service.py", import.meta.url));
// The file registry of this test (never $MULTIFROST_REGISTRY, should the environment name one).
const PY_ENV = { PYTHONPATH: [PY_SRC, process.env.PYTHONPATH].filter(Boolean).join(":"), MULTIFROST_REGISTRY: "" };

const harness = serviceHarness("mf-pycurve-");
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await waitFor(() => descendants().length === 0, 5000, "no process left behind");
});

const server = curveKeyPair();
const alice = curveKeyPair();
const mallory = curveKeyPair();

/** Starts the Python service `id` with the server's keys; resolves once it is registered. */
async function pythonCurveService(id: string, authorized?: string[]): Promise<void> {
  await harness.startService(id, PYTHON, [PY_SERVICE], {
    ...PY_ENV,
    MF_CURVE_PUBLIC: server.publicKey,
    MF_CURVE_SECRET: server.secretKey,
    ...(authorized ? { MF_AUTHORIZED: authorized.join(",") } : {}),
  });
  const entry = await harness.registry.lookup(id);
  expect(entry?.publicKey).toBe(server.publicKey);
}

describe("a Python CURVE service, TS parents", () => {
  it("an authorized TS parent calls it, taking the server key from the registry entry", async () => {
    await pythonCurveService("py-vault", [alice.publicKey]);
    const worker = await harness.connect("py-vault", 5000, { curve: alice });
    await worker.start();
    expect(await worker.call.add(2, 3)).toBe(5);
  });

  it("an unauthorized TS parent gets a WorkerStartError at once, not at its startup timeout", async () => {
    await pythonCurveService("py-vault", [alice.publicKey]);
    const worker = await harness.connect("py-vault", 5000, { curve: mallory, startupTimeoutMs: 20_000 });
    const started = Date.now();
    const error = await rejectionOf(worker.start());
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toMatch(/refused the connection/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a plain TS parent is told that the service requires CURVE", async () => {
    await pythonCurveService("py-vault");
    const worker = await harness.connect("py-vault", 5000, { startupTimeoutMs: 2000 });
    const error = await rejectionOf(worker.start());
    expect(error).toBeInstanceOf(WorkerStartError);
    expect(error.message).toMatch(/requires CURVE/);
  });

  it("with no authorized keys any CURVE parent is served", async () => {
    await pythonCurveService("py-open");
    const worker = await harness.connect("py-open", 5000, { curve: mallory });
    await worker.start();
    expect(await worker.call.add(20, 22)).toBe(42);
  });

  it("keys written by saveCurveKeys (multifrost keygen) serve a Python service by name; a '#' inside a key is no comment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mf-pykeys-"));
    dirs.push(dir);
    // Z85 has '#' among its characters; a key holding one must still admit only its owner.
    let hashed = curveKeyPair();
    while (!hashed.publicKey.slice(1).includes("#")) hashed = curveKeyPair();
    saveCurveKeys("py-svc", server, dir);
    saveCurveKeys("alice", hashed, dir);
    writeFileSync(join(dir, "authorized_keys"), `# parents\n${hashed.publicKey} # alice\n`);
    await harness.startService("py-filed", PYTHON, [PY_SERVICE], { ...PY_ENV, MF_CURVE_NAME: "py-svc", MULTIFROST_KEYS_DIR: dir });
    expect((await harness.registry.lookup("py-filed"))?.publicKey).toBe(server.publicKey);
    const worker = await harness.connect("py-filed", 5000, { curve: loadCurveKeys("alice", dir) });
    await worker.start();
    expect(await worker.call.add(40, 2)).toBe(42);
    const refused = await harness.connect("py-filed", 5000, { curve: mallory, startupTimeoutMs: 20_000 });
    expect((await rejectionOf(refused.start())).message).toMatch(/refused the connection/);
  });
});
