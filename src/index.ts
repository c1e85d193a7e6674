export { ParentWorker } from "./parent/parent-worker.js";
export type { StateChange, ParentWorkerEvents, ParentWorkerStats } from "./parent/parent-worker.js";
export type { SpawnOptions, ConnectOptions, CommonOptions, CircuitBreakerOptions, InspectOption, OutputStream } from "./parent/options.js";
export { PARENT_DEFAULTS } from "./parent/resolve-options.js";
export type { BackoffOptions } from "./core/backoff.js";
export type { FailureWindowOptions } from "./core/failure-window.js";
export { ParentHandle } from "./parent/parent-handle.js";
// From the worker entry (a bundle in dist/, scripts/build-child.mjs): one ChildWorker class for both entries.
export { ChildWorker } from "./child-entry.js";
export type { ChildWorkerOptions, ChildWorkerStats } from "./child-worker.js";
export type { CallOptions, CallProxy, Remote, DynamicFunctions } from "./parent/call-proxy.js";
export { CallStream, STREAM_CREDIT, STREAM_DEFAULTS, type StreamOptions, type StreamProxy } from "./parent/call-stream.js";
export { AbortError } from "./parent/call-cancel.js";
export {
  MultifrostError,
  RemoteCallError,
  CallTimeoutError,
  WorkerExitedError,
  WorkerNotRunningError,
  WorkerStartError,
  EncodeError,
  ProtocolError,
  InvalidArgumentError,
  SendFailedError,
  ServiceNotFoundError,
  ServiceAlreadyRunningError,
  RegistryError,
  CircuitOpenError,
  WorkerUnavailableError,
  SupervisorError,
} from "./errors.js";
export { FileRegistry, REGISTRY_DIR_ENV, REGISTRY_ENV, openRegistry, parseRegistryUrl, closeOpenedRegistries, instancesOf, instanceKey } from "./registry/index.js";
export { curveKeyPair, saveCurveKeys, loadCurveKeys, loadAuthorizedKeys, KEYS_DIR_ENV } from "./actors/curve.js";
export type { CurveKeyPair, ServiceCurveOptions, ClientCurveOptions } from "./actors/curve.js";
export type {
  ServiceEntry,
  FileRegistryOptions,
  RegistryBackend,
  RegistrationExtras,
  InstancesListener,
  RegistrySetting,
  ParsedRegistryUrl,
  EtcdRegistryOptions,
  LeaseEvents,
} from "./registry/index.js";
export { ServicePool } from "./supervision/service-pool.js";
export { ServiceRegistry } from "./registry/v4-service-registry.js";
export type { MultifrostErrorCode } from "./errors.js";
export type { ConnectionState, RestartType } from "./machines/connection.js";
export { connectionMachine } from "./machines/connection.js";
export { APP_ID, MessageType, DEFAULT_NAMESPACE } from "./wire/constants.js";
export type { WireMessage, CallMessage, ResponseMessage, ErrorMessage, OutputMessage, HeartbeatMessage, ShutdownMessage, CancelMessage } from "./wire/messages.js";
export { supervise, SupervisionTree } from "./supervision/tree.js";
export type { SuperviseOptions } from "./supervision/tree.js";
export { Supervisor } from "./supervision/supervisor-node.js";
export { Pool } from "./supervision/pool.js";
export type { TreeEvent, TreeListener } from "./supervision/node.js";
export { siblingsToRestart } from "./core/strategy.js";
export { worker, supervisor, pool } from "./supervision/spec.js";
export type { WorkerSpec, PoolSpec, SupervisorSpec, ChildSpec, Strategy, WorkerSettings } from "./supervision/spec.js";
export { checkTree, SpecError } from "./supervision/check-spec.js";
export type { SpecIssue, SpecSource } from "./supervision/check-spec.js";
export { loadTree } from "./supervision/load-tree.js";
export type { SupervisorState } from "./machines/supervisor.js";
export { jsonlInspector } from "./observability/jsonl-inspector.js";
export type { JsonlInspector, InspectionRecord } from "./observability/jsonl-inspector.js";
export { LogLevel, LogEvent, LOG_LEVEL_ENV } from "./observability/logger.js";
export type { Logger, LogFields, LogLevelOption } from "./observability/logger.js";
export { StructuredLogger, defaultJsonHandler, defaultPrettyHandler } from "./observability/v4-logging.js";
export type { LogEntry, LogHandler, LogOptions } from "./observability/v4-logging.js";
export { currentCall } from "./child-entry.js";
export type { CallContext } from "./child/call-context.js";
export { CALL_CHANNEL } from "./observability/call-tracing.js";
export type { CallChannelContext } from "./observability/call-tracing.js";
export { HANDLE_CHANNEL } from "./observability/handle-tracing.js";
export type { HandleChannelContext } from "./observability/handle-tracing.js";
