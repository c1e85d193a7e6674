export type { ServiceEntry, RegistryBackend, RegistrationExtras, InstancesListener } from "./registry.js";
export { instancesOf, instanceKey, sameInstance, entryEndpoint } from "./registry.js";
export { FileRegistry, REGISTRY_DIR_ENV, REGISTRY_FILE_NAME, PYTHON_LOCK_FILE_NAME } from "./file-registry.js";
export type { FileRegistryOptions } from "./file-registry.js";
export { openRegistry, parseRegistryUrl, closeOpenedRegistries, REGISTRY_ENV } from "./open-registry.js";
export type { RegistrySetting, ParsedRegistryUrl } from "./open-registry.js";
export type { EtcdRegistryOptions } from "./etcd-options.js";
export { isProcessAlive, isOwnerAlive, processStartTime } from "./liveness.js";
export { ServiceNotFoundError, ServiceAlreadyRunningError, RegistryError } from "../errors.js";
