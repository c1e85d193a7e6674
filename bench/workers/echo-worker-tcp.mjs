// The echo worker, made to ignore the parent's private ipc endpoint and connect over TCP like a
// v4 child (for bench/spawn-channel.mjs).
delete process.env.MULTIFROST_ZMQ_ENDPOINT;
await import("./echo-worker.mjs");
