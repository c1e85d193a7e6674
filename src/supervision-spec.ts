/** Moved to src/supervision/spec.ts and src/supervision/check-spec.ts; this shim goes when src/supervisor.ts does. */
export * from "./supervision/spec.js";
export { checkSupervisor, checkTree } from "./supervision/check-spec.js";
