// Types for scripts/machine-diagrams.mjs (imported by test/machine-diagrams.test.ts).
import type { AnyStateMachine } from "xstate";

/** Duck-typed check for an XState v5 StateMachine. */
export declare function isStateMachine(value: unknown): value is AnyStateMachine;

/** The machines among a module's exports, as [export name, machine] sorted by export name. */
export declare function findMachines(moduleExports: Record<string, unknown>): Array<[string, AnyStateMachine]>;

/** One machine as the text of a Mermaid stateDiagram-v2 (without the ``` fence). */
export declare function renderMachine(machine: AnyStateMachine): string;

/** The Mermaid id renderMachine gives each state, by the state's dotted path ("" for a drawn root). */
export declare function stateIds(machine: AnyStateMachine): Record<string, string>;

/** The whole of docs/machines.md for the machines among `moduleExports`. */
export declare function renderDocument(moduleExports: Record<string, unknown>): string;
