// Types for test/helpers/netns.mjs (imported by test/multihost.test.ts; bench/multihost.mjs uses it too).

/** One side of a host pair. */
export interface NamespaceHost {
  /** The namespace's name (`mf-a-<tag>` / `mf-b-<tag>`). */
  readonly name: string;
  /** Its end of the veth pair. */
  readonly device: string;
  /** Its address on the veth pair (`<subnet>.1` / `<subnet>.2`). */
  readonly address: string;
}

/** Two network namespaces joined by a veth pair. */
export interface HostPair {
  readonly a: NamespaceHost;
  readonly b: NamespaceHost;
  /** `argv` prefixed to run inside `host`'s namespace (`ip netns exec <name> …`, which execs). */
  exec(host: NamespaceHost, argv: readonly string[]): string[];
  /** Pids of every process inside either namespace. */
  pids(): number[];
  /** Kills every process inside either namespace, waits until they are gone, deletes both; throws if anything stays. */
  remove(): void;
}

/** Why network namespaces cannot be created here (found by trying), or undefined when they can. */
export declare function namespaceSkipReason(): string | undefined;

/** Pids of the processes inside namespace `name`. */
export declare function namespacePids(name: string): number[];

/** SIGKILLs `pids`, waits until none runs; returns those still running after `timeoutMs`. */
export declare function killAndWait(pids: readonly number[], timeoutMs?: number): number[];

/** Creates the two namespaces and their veth pair, every link up. */
export declare function createHostPair(options?: { tag?: string; subnet?: string }): HostPair;

/** This process's environment less proxy variables, plus `extra`. */
export declare function namespaceEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
