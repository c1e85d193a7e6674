// Benchmark child: the library's ChildWorker with two trivial methods, the counterpart of
// bench/lib/raw-child.mjs (which answers the same two functions with no library code).
//
//   add(a, b) -> a + b
//   echo(x)   -> x        (a Buffer travels as msgpack bin both ways)

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
