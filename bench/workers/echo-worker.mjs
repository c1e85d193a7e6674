// Benchmark child: the library's ChildWorker with two trivial methods, the counterpart of
// bench/lib/raw-child.mjs (which answers the same two functions with no library code). It imports
// the lean worker entry, multifrost/child, as a worker should (bench/lean-child.mjs compares it with
// importing the whole package).
//
//   add(a, b) -> a + b
//   echo(x)   -> x        (a Buffer travels as msgpack bin both ways)

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
