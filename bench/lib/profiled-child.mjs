// Runs the child script named by MF_PROF_TARGET under the V8 CPU profiler and writes
// MF_PROF_DIR/child-<pid>.cpuprofile when the process exits (used by bench/profile.mjs;
// NODE_OPTIONS cannot carry --cpu-prof).
import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const session = new Session();
session.connect();
session.post("Profiler.setSamplingInterval", { interval: Number(process.env.MF_PROF_INTERVAL ?? 100) });
session.post("Profiler.enable");
session.post("Profiler.start");
process.on("exit", () => {
  // The in-thread inspector session answers synchronously.
  session.post("Profiler.stop", (error, result) => {
    if (!error) writeFileSync(join(process.env.MF_PROF_DIR ?? ".", `child-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
  });
});
await import(pathToFileURL(process.env.MF_PROF_TARGET).href);
