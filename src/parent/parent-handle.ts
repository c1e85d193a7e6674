/** The v4 handle; defined beside ParentWorker (see there), exported from here too. */
export { ParentHandle } from "./parent-worker.js";
