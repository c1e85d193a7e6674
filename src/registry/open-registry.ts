import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../errors.js";
import { checkEtcdOptions, type EtcdRegistryOptions } from "./etcd-options.js";
import type { EtcdRegistry } from "./etcd-registry.js";
import { FileRegistry } from "./file-registry.js";
import type { InstancesListener, RegistrationExtras, RegistryBackend, ServiceEntry } from "./registry.js";

/** Environment variable naming the registry as a URL: `file:///dir` or `etcd://host:port[,host:port…][/prefix]`. */
export const REGISTRY_ENV = "MULTIFROST_REGISTRY";

/**
 * A registry: a backend object, its URL (`file:///dir`, `etcd://host:port[,…][/prefix][?ttl=10&timeout=3000]`),
 * or etcd's options (for TLS and authentication, which a URL does not carry).
 */
export type RegistrySetting = RegistryBackend | string | { readonly etcd: EtcdRegistryOptions };

function isEtcdOptions(setting: RegistrySetting | undefined): setting is { readonly etcd: EtcdRegistryOptions } {
  return typeof setting === "object" && setting !== null && "etcd" in setting && !("register" in setting);
}

export type ParsedRegistryUrl = { readonly kind: "file"; readonly dir: string } | { readonly kind: "etcd"; readonly options: EtcdRegistryOptions };

/** Parses a registry URL; InvalidArgumentError says what is accepted. */
export function parseRegistryUrl(url: string): ParsedRegistryUrl {
  if (typeof url !== "string") throw new InvalidArgumentError(`a registry URL must be a string (got ${typeof url})`);
  if (url.startsWith("file://")) {
    let dir: string;
    try {
      dir = fileURLToPath(url);
    } catch (error) {
      throw new InvalidArgumentError(`invalid registry URL ${JSON.stringify(url)}: ${(error as Error).message}`);
    }
    return { kind: "file", dir };
  }
  if (url.startsWith("etcd://")) {
    const rest = url.slice("etcd://".length);
    const queryAt = rest.indexOf("?");
    const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
    const slash = beforeQuery.indexOf("/");
    const hosts = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
    const path = slash === -1 ? "" : beforeQuery.slice(slash + 1);
    const endpoints = hosts.split(",").filter((host) => host.length > 0);
    if (endpoints.length === 0) throw new InvalidArgumentError(`registry URL ${JSON.stringify(url)} names no etcd endpoint (etcd://host:port[,host:port…])`);
    const query = new URLSearchParams(queryAt === -1 ? "" : rest.slice(queryAt + 1));
    const options: { endpoints: string[]; prefix?: string; leaseTtlSeconds?: number; requestTimeoutMs?: number } = { endpoints };
    if (path !== "") {
      try {
        options.prefix = decodeURIComponent(path.endsWith("/") ? path : `${path}/`);
      } catch {
        throw new InvalidArgumentError(`registry URL ${JSON.stringify(url)}: the prefix is not valid percent-encoding`);
      }
    }
    for (const [name, value] of query) {
      if (name === "ttl") options.leaseTtlSeconds = Number(value);
      else if (name === "timeout") options.requestTimeoutMs = Number(value);
      else throw new InvalidArgumentError(`registry URL ${JSON.stringify(url)}: unknown parameter '${name}' (known: ttl, timeout)`);
    }
    checkEtcdOptions(options); // a bad ttl, timeout or endpoint is refused now, not at the first request
    return { kind: "etcd", options };
  }
  throw new InvalidArgumentError(`unsupported registry URL ${JSON.stringify(url)}: use file:///dir or etcd://host:port[,host:port…]`);
}

const opened = new Map<string, RegistryBackend>();
const openedFromOptions = new WeakMap<object, LazyEtcdRegistry>();

/**
 * The registry a setting names: a backend is used as is; a URL opens one (an etcd URL shares one
 * client per process and loads the etcd client only then); with neither, `dir` is a FileRegistry
 * directory; else `$MULTIFROST_REGISTRY`, else the default file registry (`$MULTIFROST_REGISTRY_DIR`
 * or ~/.multifrost).
 */
export function openRegistry(setting?: RegistrySetting, dir?: string): RegistryBackend {
  if (isEtcdOptions(setting)) {
    // One client per options object, as per URL: a pool's members share their tree's.
    let registry = openedFromOptions.get(setting);
    if (registry === undefined) openedFromOptions.set(setting, (registry = new LazyEtcdRegistry(setting.etcd)));
    return registry;
  }
  if (typeof setting === "object") return setting;
  if (setting === undefined && dir !== undefined) return new FileRegistry({ dir });
  const url = setting ?? process.env[REGISTRY_ENV];
  if (url === undefined || url === "") return new FileRegistry();
  const parsed = parseRegistryUrl(url);
  if (parsed.kind === "file") return new FileRegistry({ dir: parsed.dir });
  let registry = opened.get(url);
  if (registry === undefined) {
    registry = new LazyEtcdRegistry(parsed.options);
    opened.set(url, registry);
  }
  return registry;
}

/** Closes every registry `openRegistry` opened from a URL (their etcd clients; registrations are revoked). */
export async function closeOpenedRegistries(): Promise<void> {
  const all = [...opened.values()];
  opened.clear();
  await Promise.all(all.map((registry) => (registry as LazyEtcdRegistry).close()));
}

/** An EtcdRegistry whose code (and the etcd client's) is imported on first use. */
class LazyEtcdRegistry implements RegistryBackend {
  readonly location: string;
  readonly #options: EtcdRegistryOptions;
  #loading: Promise<EtcdRegistry> | undefined;
  #loaded: EtcdRegistry | undefined;

  constructor(options: EtcdRegistryOptions) {
    checkEtcdOptions(options);
    this.#options = options;
    this.location = `etcd://${options.endpoints.join(",")}/${options.prefix ?? "multifrost/"}`;
  }

  #registry(): Promise<EtcdRegistry> {
    this.#loading ??= import("./etcd-registry.js").then(({ EtcdRegistry: Registry }) => (this.#loaded = new Registry(this.#options)));
    return this.#loading;
  }

  async register(serviceId: string, port: number, pid?: number, extras?: RegistrationExtras): Promise<ServiceEntry> {
    return (await this.#registry()).register(serviceId, port, pid, extras);
  }
  async discover(serviceId: string, timeoutMs: number): Promise<ServiceEntry> {
    return (await this.#registry()).discover(serviceId, timeoutMs);
  }
  async lookup(serviceId: string): Promise<ServiceEntry | undefined> {
    return (await this.#registry()).lookup(serviceId);
  }
  async unregister(serviceId: string, pid?: number): Promise<boolean> {
    return (await this.#registry()).unregister(serviceId, pid);
  }
  async list(): Promise<Record<string, ServiceEntry>> {
    return (await this.#registry()).list();
  }
  async instances(serviceId: string): Promise<ServiceEntry[]> {
    return (await this.#registry()).instances(serviceId);
  }
  async listInstances(): Promise<{ serviceId: string; entry: ServiceEntry }[]> {
    return (await this.#registry()).listInstances();
  }
  watch(serviceId: string, listener: InstancesListener): () => void {
    if (this.#loaded !== undefined) return this.#loaded.watch(serviceId, listener);
    let unwatch: (() => void) | undefined;
    let stopped = false;
    this.#registry().then(
      (registry) => {
        if (!stopped) unwatch = registry.watch(serviceId, listener);
      },
      () => undefined, // a bad option already failed the registry's first request
    );
    return () => {
      stopped = true;
      unwatch?.();
    };
  }
  async close(): Promise<void> {
    const registry = await this.#loading?.catch(() => undefined); // never opened (a bad option): nothing to close
    await registry?.close();
  }
}
