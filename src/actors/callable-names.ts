/**
 * The names a worker exposes: methods (and function-valued own fields) defined by the user's
 * classes, from the concrete class up to but excluding `base`. Never `constructor`,
 * `_`-prefixed names, accessors, or anything `base` or `Object.prototype` defines — even when
 * a subclass overrides it. `#private` methods are invisible to reflection, so never listed.
 */
export function callableNames(instance: object, base: object): string[] {
  const reserved = new Set<string>([...Object.getOwnPropertyNames(Object.prototype)]);
  for (let proto: object | null = base; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) reserved.add(name);
  }
  const names = new Set<string>();
  const consider = (owner: object, name: string): void => {
    if (reserved.has(name) || name.startsWith("_")) return;
    const descriptor = Object.getOwnPropertyDescriptor(owner, name);
    if (descriptor && typeof descriptor.value === "function") names.add(name);
  };
  for (const name of Object.getOwnPropertyNames(instance)) consider(instance, name);
  for (let proto = Object.getPrototypeOf(instance) as object | null; proto && proto !== base && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) consider(proto, name);
  }
  return [...names].sort();
}
