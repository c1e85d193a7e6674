import { closeSync, openSync, writeSync } from "node:fs";
import type { InspectionEvent } from "xstate";

/**
 * Writes XState's inspection stream as JSON lines, one per event, for later replay or grep:
 * `supervise(spec, { inspect: jsonlInspector("trace.jsonl") })`. Each line holds the event kind,
 * the actor's session id and its path (`root/math`: the system id a supervision tree gives each
 * supervisor and worker; an invoked actor without one is named after its parent, e.g.
 * `root/math/ping`), and the state value / event / transition it carries. Writes are
 * synchronous (appendFile-style) so a crash loses nothing already seen; call `close()` when done.
 */
export interface JsonlInspector {
  (event: InspectionEvent): void;
  close(): void;
}

export interface InspectionRecord {
  at: number;
  type: InspectionEvent["type"];
  /** The actor's session id (unique in the system) and, when it has one, the id of its logic. */
  actor: string;
  /** Where the actor is: its system id (a tree path, a worker's name), else its parent's path + its own id. */
  path: string | undefined;
  machine: string | undefined;
  /** @xstate.event: the event's type and who sent it. */
  event?: unknown;
  source?: string | undefined;
  sourcePath?: string | undefined;
  /** @xstate.snapshot: the state value and status after the step. */
  value?: unknown;
  status?: string;
}

export function jsonlInspector(path: string): JsonlInspector {
  const fd = openSync(path, "a");
  let open = true;
  const inspect = ((event: InspectionEvent) => {
    if (!open) return;
    writeSync(fd, `${JSON.stringify(toRecord(event), safeReplacer())}\n`);
  }) as JsonlInspector;
  inspect.close = () => {
    if (!open) return;
    open = false;
    closeSync(fd);
  };
  return inspect;
}

export function toRecord(event: InspectionEvent): InspectionRecord {
  const actorRef = event.actorRef as unknown as NamedRef & { logic?: { id?: string } };
  const record: InspectionRecord = {
    at: Date.now(),
    type: event.type,
    actor: actorRef.sessionId ?? "?",
    path: pathOf(actorRef),
    machine: actorRef.logic?.id,
  };
  if (event.type === "@xstate.event") {
    record.event = event.event;
    const source = event.sourceRef as unknown as NamedRef | undefined;
    record.source = source?.sessionId;
    record.sourcePath = source && pathOf(source);
  } else if (event.type === "@xstate.snapshot") {
    const snapshot = event.snapshot as unknown as { value?: unknown; status?: string };
    record.value = snapshot.value;
    record.status = snapshot.status;
  }
  return record;
}

/** What an actor ref tells about where it is (public fields of XState's Actor). */
interface NamedRef {
  sessionId?: string;
  systemId?: string;
  id?: string;
  _parent?: NamedRef;
}

export function pathOf(ref: NamedRef): string | undefined {
  if (ref.systemId !== undefined) return ref.systemId;
  // XState reports an actor's creation before it sets its system id; ours carry the same path as
  // their id, which an invoked actor's id (its invoke id) never is.
  const id = ref.id ?? ref.sessionId ?? "?";
  const parent = ref._parent && pathOf(ref._parent);
  if (parent === undefined) return id !== ref.sessionId ? id : undefined;
  return id.startsWith(`${parent}/`) ? id : `${parent}/${id}`;
}

/** Events may carry errors, BigInts or cycles: keep the line valid JSON whatever they hold. */
function safeReplacer(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (_key, value) => {
    if (value instanceof Error) return { name: value.name, message: value.message };
    if (typeof value === "bigint") return value.toString();
    if (typeof value === "function") return undefined;
    if (typeof value === "object" && value !== null) {
      if (seen.has(value)) return "[repeated]";
      seen.add(value);
    }
    return value;
  };
}
