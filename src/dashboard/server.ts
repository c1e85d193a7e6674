import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { InvalidArgumentError } from "../errors.js";
import { DashboardHub, type DashboardSource } from "./hub.js";
import { PAGE_HTML } from "./page.js";
import { PAGE_SCRIPT } from "./page-script.js";

/**
 * The live dashboard of a tree (loopback by default), one page updated over Server-Sent Events:
 *   GET /               the page (our own HTML, CSS and script; nothing from the internet)
 *   GET /dashboard.js   its script
 *   GET /mermaid.min.js mermaid's browser bundle, shipped in the package (assets/)
 *   GET /machines.json  the machines' Mermaid state diagrams, generated from their definitions
 *   GET /events         SSE: `snapshot` (on connect, after transitions, at least every 500 ms while
 *                       a page is open), `transition` (each one, as it happens), `history` (on connect)
 *   GET /snapshot       the snapshot and the recent transitions as JSON
 */

export type { DashboardSource, TransitionHistory } from "./hub.js";

export interface DashboardOptions {
  /** Default 0: the OS picks a free port (read it from the result). */
  readonly port?: number;
  /** Default "127.0.0.1". */
  readonly host?: string;
}

export interface DashboardServer {
  readonly port: number;
  readonly host: string;
  /** e.g. "http://127.0.0.1:39421/" */
  readonly url: string;
  close(): Promise<void>;
}

const ASSETS = new URL("../../assets/", import.meta.url);

export async function serveDashboard(source: DashboardSource, options: DashboardOptions = {}): Promise<DashboardServer> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be an integer from 0 to 65535, got ${String(port)}`);
  const hub = new DashboardHub(source);
  const server = createServer((request, response) => {
    answer(hub, request, response).catch((error: unknown) => send(response, 500, "application/json", JSON.stringify({ error: String(error) })));
  });
  server.keepAliveTimeout = 1000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    hub.close();
    throw error;
  }
  const address = server.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  return {
    port: bound,
    host,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}/`,
    close: () =>
      new Promise<void>((resolve) => {
        hub.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const assetCache = new Map<string, Promise<Buffer>>();

function asset(name: string): Promise<Buffer> {
  let cached = assetCache.get(name);
  if (cached === undefined) {
    cached = readFile(new URL(name, ASSETS));
    cached.catch(() => assetCache.delete(name));
    assetCache.set(name, cached);
  }
  return cached;
}

async function answer(hub: DashboardHub, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? "/").split("?")[0];
  if (request.method !== "GET" && request.method !== "HEAD") {
    send(response, 405, "application/json", JSON.stringify({ error: "only GET" }));
    return;
  }
  switch (path) {
    case "/":
    case "/index.html":
      send(response, 200, "text/html; charset=utf-8", PAGE_HTML);
      return;
    case "/dashboard.js":
      send(response, 200, "text/javascript; charset=utf-8", PAGE_SCRIPT);
      return;
    case "/mermaid.min.js":
      send(response, 200, "text/javascript; charset=utf-8", await asset("mermaid.min.js"), "max-age=3600");
      return;
    case "/machines.json":
      send(response, 200, "application/json", await asset("machines.json"));
      return;
    case "/snapshot":
      send(response, 200, "application/json", JSON.stringify({ snapshot: hub.snapshot(), history: hub.history() }));
      return;
    case "/favicon.ico":
      response.writeHead(204).end();
      return;
    case "/events":
      hub.attach(response);
      return;
    default:
      send(response, 404, "application/json", JSON.stringify({ error: "not found" }));
  }
}

function send(response: ServerResponse, status: number, type: string, body: string | Buffer, cache = "no-store"): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(status, {
    "content-type": type,
    "cache-control": cache,
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
  });
  response.end(body);
}
