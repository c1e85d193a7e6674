export { workerLifecycleMachine } from "./worker-lifecycle.js";
export type { LifecycleContext, LifecycleEvent, LifecycleState } from "./worker-lifecycle.js";
