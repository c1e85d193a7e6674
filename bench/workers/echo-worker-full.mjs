// bench/workers/echo-worker.mjs importing the whole package ("multifrost") instead of the lean
// worker entry: bench/lean-child.mjs measures what that costs a spawned worker's startup.
import { ChildWorker } from "multifrost";

class EchoWorker extends ChildWorker {
  add(a, b) {
    return a + b;
  }

  echo(x) {
    return x;
  }
}

await new EchoWorker().run();
