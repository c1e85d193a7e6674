// bench/workers/echo-worker.mjs through the lean entry point (multifrost/child): no XState,
// parent side, registry or OpenTelemetry API in the child's import graph.
import { ChildWorker } from "multifrost/child";

class EchoWorker extends ChildWorker {
  add(a, b) {
    return a + b;
  }

  echo(x) {
    return x;
  }
}

await new EchoWorker().run();
