import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { InvalidArgumentError } from "../errors.js";
import { PROMETHEUS_CONTENT_TYPE, prometheusText, type WorkerMetrics } from "./prometheus.js";

/**
 * The health endpoint of a tree or a worker (loopback by default):
 *   GET /healthz  200 when every worker is up (and a tree is running), else 503; JSON per worker
 *   GET /readyz   200 once started and running, else 503
 *   GET /metrics  Prometheus text
 *   GET /tree     the snapshot as JSON
 */

export interface HealthSource {
  /** The whole snapshot (for /tree). */
  snapshot(): unknown;
  /** Every worker's snapshot and latency histogram (for /healthz and /metrics). */
  workers(): WorkerMetrics[];
  /** Started and running (a tree: its root is running; a worker: it is up). */
  ready(): boolean;
}

export interface HealthOptions {
  /** Default 0: the OS picks a free port (read it from the result). */
  readonly port?: number;
  /** Default "127.0.0.1". */
  readonly host?: string;
}

export interface HealthServer {
  readonly port: number;
  readonly host: string;
  /** e.g. "http://127.0.0.1:39421" */
  readonly url: string;
  close(): Promise<void>;
}

const UP = new Set(["connected", "degraded", "circuit-open", "half-open"]);

export async function serveHealth(source: HealthSource, options: HealthOptions = {}): Promise<HealthServer> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be an integer from 0 to 65535, got ${String(port)}`);
  const server = createServer((request, response) => answer(source, request, response));
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  return {
    port: bound,
    host,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(source: HealthSource, request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? "/").split("?")[0];
  if (request.method !== "GET" && request.method !== "HEAD") {
    send(response, 405, "application/json", { error: "only GET" });
    return;
  }
  try {
    switch (path) {
      case "/healthz": {
        const workers = source.workers().map(({ snapshot }) => ({ path: snapshot.path, state: snapshot.state, reason: snapshot.reason, up: UP.has(snapshot.state) }));
        const healthy = source.ready() && workers.every((worker) => worker.up);
        send(response, healthy ? 200 : 503, "application/json", { status: healthy ? "ok" : "unhealthy", workers });
        return;
      }
      case "/readyz": {
        const ready = source.ready();
        send(response, ready ? 200 : 503, "application/json", { status: ready ? "ready" : "not ready" });
        return;
      }
      case "/metrics":
        send(response, 200, PROMETHEUS_CONTENT_TYPE, prometheusText(source.workers()));
        return;
      case "/tree":
        send(response, 200, "application/json", source.snapshot());
        return;
      default:
        send(response, 404, "application/json", { error: "not found", paths: ["/healthz", "/readyz", "/metrics", "/tree"] });
    }
  } catch (error) {
    send(response, 500, "application/json", { error: String(error) });
  }
}

function send(response: ServerResponse, status: number, type: string, body: unknown): void {
  const text = typeof body === "string" ? body : `${JSON.stringify(body, null, 2)}\n`;
  response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  response.end(text);
}
