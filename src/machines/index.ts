export { connectionMachine, connectionStateOf, circuitResetDelay, LIVE_STATES } from "./connection.js";
export type {
  CircuitSettings,
  CloseInput,
  CloseMode,
  ConnectionContext,
  ConnectionEvent,
  ConnectionInput,
  ConnectionSnapshot,
  ConnectionState,
  HeartbeatSettings,
  OpenInput,
  RestartType,
} from "./connection.js";
export { supervisorMachine } from "./supervisor.js";
export type { SupervisorContext, SupervisorEvent, SupervisorSnapshot, SupervisorState } from "./supervisor.js";
