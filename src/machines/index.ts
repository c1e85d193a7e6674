export { connectionMachine, connectionStateOf, circuitResetDelay } from "./connection.js";
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
