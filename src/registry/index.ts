export type { ServiceEntry, RegistryBackend } from "./registry.js";
export { FileRegistry, REGISTRY_DIR_ENV, REGISTRY_FILE_NAME, PYTHON_LOCK_FILE_NAME } from "./file-registry.js";
export type { FileRegistryOptions } from "./file-registry.js";
export { isProcessAlive, isOwnerAlive, processStartTime } from "./liveness.js";
export { ServiceNotFoundError, ServiceAlreadyRunningError, RegistryError } from "../errors.js";
