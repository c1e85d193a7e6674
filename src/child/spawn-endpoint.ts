import { ENV_ENDPOINT, ENV_PORT, MAX_PORT, MIN_PORT } from "../wire/index.js";

/**
 * Where a spawned worker connects, from its environment: the parent's private channel when it
 * offers one (an OS-protected ipc path, MULTIFROST_ZMQ_ENDPOINT), else v4's TCP port
 * (COMLINK_ZMQ_PORT); undefined when the worker was not spawned. An invalid port, or neither a
 * port nor a service id, ends the process with a FATAL line and exit code 1, as v4 children do.
 */
export function spawnEndpoint(serviceId: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const portText = env[ENV_PORT];
  if (portText === undefined) {
    if (serviceId === undefined) fatal(`Need ${ENV_PORT} env (spawn mode) or a serviceId (connect mode)`);
    return undefined;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText.trim()) || !Number.isInteger(port) || port < MIN_PORT || port > MAX_PORT) {
    fatal(`invalid ${ENV_PORT} '${portText}': expected an integer port between ${MIN_PORT} and ${MAX_PORT}`);
  }
  const privateEndpoint = env[ENV_ENDPOINT];
  return privateEndpoint !== undefined && privateEndpoint.startsWith("ipc://") ? privateEndpoint : `tcp://127.0.0.1:${port}`;
}

function fatal(message: string): never {
  process.stderr.write(`FATAL: ${message}\n`);
  process.exit(1);
}
