/**
 * `multifrost/child`: what a worker process needs and nothing else (docs/performance.md, A lean
 * child). Its import graph has no XState, no parent side, no supervision, no OpenTelemetry API
 * unless a tracer provider is registered, and no registry code unless the worker runs in connect
 * mode (then imported on demand). The build ships it as one bundled file (scripts/build-child.mjs);
 * `multifrost` re-exports its ChildWorker and currentCall, so `import { ChildWorker } from
 * "multifrost"` is the same class — it only loads the whole package besides.
 */
export { ChildWorker } from "./child-worker.js";
export type { ChildWorkerOptions, ChildWorkerStats } from "./child-worker.js";
export { currentCall } from "./child/call-context.js";
export type { CallContext } from "./child/call-context.js";
export { HANDLE_CHANNEL } from "./observability/handle-tracing.js";
export type { HandleChannelContext } from "./observability/handle-tracing.js";
export { APP_ID, DEFAULT_NAMESPACE } from "./wire/constants.js";
export type { RegistryBackend, ServiceEntry } from "./registry/index.js";
export type { ServiceCurveOptions } from "./actors/curve.js";
export type { Logger, LogLevelOption } from "./observability/logger.js";
