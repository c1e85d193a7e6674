import { RegistryError } from "../errors.js";

/**
 * Who may be trusted with the registry. Its entries say which local port a parent connects to,
 * so whoever can write the directory or the file can send our calls to their own process.
 *
 * The rule, for the registry directory and for `services.json` alike:
 *  - owned by this process's uid (root included: root must not follow another user's registry);
 *  - not writable by group or others (mode & 0o022 == 0).
 * Read and execute bits for group/others are accepted (they reveal service ids and ports, which a
 * port scan reveals anyway); on every update the directory is narrowed to 0700, and the file is
 * always written 0600. Where there is no uid (Windows) nothing is checked.
 */

const GROUP_OR_OTHERS_WRITE = 0o022;

export interface Ownership {
  readonly uid: number | bigint;
  readonly mode: number | bigint;
}

export function assertTrusted(kind: "directory" | "file", path: string, info: Ownership): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  const owner = Number(info.uid);
  const mode = Number(info.mode) & 0o7777;
  const shown = `owner uid ${owner}, mode ${mode.toString(8).padStart(4, "0")}`;
  if (owner !== uid) {
    throw new RegistryError(
      `refusing the registry ${kind} ${path} (${shown}): it is not owned by this process's uid ${uid}; ` +
        "use a registry directory of your own (the dir option or MULTIFROST_REGISTRY_DIR)",
    );
  }
  if ((mode & GROUP_OR_OTHERS_WRITE) !== 0) {
    throw new RegistryError(
      `refusing the registry ${kind} ${path} (${shown}): group or others may write it; ` +
        `run chmod ${kind === "directory" ? "700" : "600"} on it if you trust its content`,
    );
  }
}
