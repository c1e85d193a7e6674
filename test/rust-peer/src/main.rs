//! `mf_rust_peer`: a small Rust test peer for the `comlink_ipc_v4` wire (ZeroMQ ROUTER/DEALER,
//! one msgpack map per message), written from `protocol-v4.txt`. The Multifrost TypeScript tests
//! use it to check interoperability with a Rust process, in both directions.
//!
//! Roles (first argument), shaped like `test/peer/mf_peer.py`:
//!
//! * `child [--namespace NS] [--bind]` — a v4 worker. Spawn mode (default): connect a ROUTER to
//!   `tcp://127.0.0.1:$COMLINK_ZMQ_PORT`. `--bind`: bind a ROUTER on `tcp://127.0.0.1:*` and print
//!   `PORT <n>` on stdout (connect mode; whoever started it registers or dials the port).
//! * `parent --exec EXE [--exec-arg A]... --script PATH [--script-arg A]... [--timeout S]
//!   [--call-timeout S] [--namespace NS] [--client-name NAME]` — bind a DEALER, spawn the worker
//!   with `COMLINK_ZMQ_PORT`, run the interop cases against it, stop it.
//! * `connect (--port N | --service ID [--registry-dir DIR]) [...]` — connect a DEALER to a
//!   running service and run the same cases but `shutdown`.
//!
//! The parent roles print one JSON line per case (`{"case", "ok", "detail"}`) and then
//! `{"done": true, "passed": N, "failed": M}`; the exit code is 0 only when M == 0.
//! Only 127.0.0.1 is ever bound or dialled.

use rmpv::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const APP: &str = "comlink_ipc_v4";
const TICK_MS: i64 = 10;

// ------------------------------------------------------------------------------------------
// Messages
// ------------------------------------------------------------------------------------------

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// A random (version 4) UUID in its hyphenated form.
fn new_id() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(fields.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// A message with the four core fields followed by `fields`.
fn message(msg_type: &str, id: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut all = vec![("app", s(APP)), ("id", s(id)), ("type", s(msg_type)), ("timestamp", Value::from(now_secs()))];
    all.extend(fields);
    map(all)
}

fn pack(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("encoding into a Vec cannot fail");
    out
}

/// Decodes a payload; `None` unless it is one msgpack map whose `app` is ours.
fn unpack(payload: &[u8]) -> Option<Value> {
    let mut cursor = payload;
    let value = rmpv::decode::read_value(&mut cursor).ok()?;
    if !cursor.is_empty() || !matches!(value, Value::Map(_)) {
        return None;
    }
    (field(&value, "app").and_then(Value::as_str) == Some(APP)).then_some(value)
}

fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
        _ => None,
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    field(value, key).and_then(Value::as_str).filter(|text| !text.is_empty())
}

/// Short text of a value for case details (at most `limit` characters).
fn short(value: &Value, limit: usize) -> String {
    let text = match value {
        Value::Binary(b) => format!("<{} bytes>", b.len()),
        other => other.to_string(),
    };
    if text.chars().count() <= limit { text } else { text.chars().take(limit).collect::<String>() + "..." }
}

/// The msgpack family of a value: nil, bool, int, float, str, bin, array, map, ext.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "bool",
        Value::Integer(_) => "int",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "str",
        Value::Binary(_) => "bin",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Ext(..) => "ext",
    }
}

fn as_i128(value: &Value) -> Option<i128> {
    match value {
        Value::Integer(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

fn int_value(n: i128) -> Option<Value> {
    if let Ok(v) = i64::try_from(n) {
        Some(Value::from(v))
    } else {
        u64::try_from(n).ok().map(Value::from)
    }
}

/// Deep equality that also requires the same msgpack family (an int is not a float, a bool is
/// not an int, a str is not a bin). float32 and float64 compare by value; maps ignore key order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Boolean(x), Value::Boolean(y)) => x == y,
        (Value::Integer(_), Value::Integer(_)) => as_i128(a) == as_i128(b),
        (Value::F32(_) | Value::F64(_), Value::F32(_) | Value::F64(_)) => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            x == y || (x.is_nan() && y.is_nan())
        }
        (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
        (Value::Binary(x), Value::Binary(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        (Value::Ext(t1, d1), Value::Ext(t2, d2)) => t1 == t2 && d1 == d2,
        _ => false,
    }
}

// ------------------------------------------------------------------------------------------
// Signals
// ------------------------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signum: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_stop_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

fn getppid() -> i32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }
}

// ------------------------------------------------------------------------------------------
// Child role
// ------------------------------------------------------------------------------------------

const FUNCTIONS: &[&str] = &[
    "add", "big_ints", "count_bytes", "echo", "echo_many", "fail", "get_info", "list_functions",
    "multiply", "nested", "none", "sleep", "spray_garbage", "type_of", "_private",
];

enum Outcome {
    Result(Value),
    Error(String),
    /// Run on a thread (sleep), so the loop keeps answering meanwhile.
    Later(f64),
}

struct ChildState {
    namespace: String,
}

impl ChildState {
    fn invoke(&self, name: &str, args: &[Value]) -> Outcome {
        let arity = |n: usize| -> Result<(), Outcome> {
            if args.len() == n {
                Ok(())
            } else {
                Err(Outcome::Error(format!("TypeError: {name}() takes {n} argument(s) ({} given)", args.len())))
            }
        };
        macro_rules! check {
            ($n:expr) => {
                if let Err(e) = arity($n) {
                    return e;
                }
            };
        }
        match name {
            "add" | "multiply" => {
                check!(2);
                arith(name, &args[0], &args[1])
            }
            "echo" => {
                check!(1);
                Outcome::Result(args[0].clone())
            }
            "type_of" => {
                check!(1);
                Outcome::Result(s(type_name(&args[0])))
            }
            "echo_many" => Outcome::Result(Value::Array(args.to_vec())),
            "fail" => {
                check!(1);
                let text = args[0].as_str().map(str::to_owned).unwrap_or_else(|| args[0].to_string());
                Outcome::Error(format!("ValueError: {text}"))
            }
            "none" => {
                check!(0);
                Outcome::Result(Value::Nil)
            }
            "sleep" => {
                check!(1);
                match args[0].as_f64() {
                    Some(secs) if secs.is_finite() && secs >= 0.0 && !matches!(args[0], Value::Boolean(_)) => Outcome::Later(secs),
                    _ => Outcome::Error(format!("TypeError: sleep() wants seconds, got {}", type_name(&args[0]))),
                }
            }
            "big_ints" => {
                check!(0);
                Outcome::Result(Value::Array(vec![
                    Value::from(i64::MAX),
                    Value::from(i64::MIN),
                    Value::from(u64::MAX),
                    Value::from((1i64 << 53) + 1),
                ]))
            }
            "get_info" => {
                check!(0);
                Outcome::Result(map(vec![
                    ("language", s("rust")),
                    ("pid", Value::from(std::process::id())),
                    ("namespace", s(&self.namespace)),
                ]))
            }
            "nested" => {
                check!(0);
                Outcome::Result(nested_value())
            }
            "count_bytes" => {
                check!(1);
                match &args[0] {
                    Value::Binary(b) => Outcome::Result(Value::from(b.len())),
                    other => Outcome::Error(format!("TypeError: count_bytes expects bin, got {}", type_name(other))),
                }
            }
            "spray_garbage" => Outcome::Result(s("sprayed")),
            "list_functions" => Outcome::Result(Value::Array(
                FUNCTIONS.iter().filter(|f| !f.starts_with('_') && **f != "list_functions").map(|f| s(f)).collect(),
            )),
            _ => Outcome::Error(format!("AttributeError: Function '{name}' not found")),
        }
    }
}

fn nested_value() -> Value {
    map(vec![
        ("a", Value::Array(vec![Value::from(1), map(vec![("b", Value::Array(vec![Value::from(true), Value::Nil, Value::from(1.5)]))])])),
        ("u", s("héllo 世界 🎉")),
    ])
}

fn arith(name: &str, a: &Value, b: &Value) -> Outcome {
    let is_num = |v: &Value| matches!(v, Value::Integer(_) | Value::F32(_) | Value::F64(_));
    if !is_num(a) || !is_num(b) {
        return Outcome::Error(format!("TypeError: {name}() wants numbers, got {} and {}", type_name(a), type_name(b)));
    }
    if let (Some(x), Some(y)) = (as_i128(a), as_i128(b)) {
        let exact = if name == "add" { x.checked_add(y) } else { x.checked_mul(y) };
        return match exact.and_then(int_value) {
            Some(v) => Outcome::Result(v),
            None => Outcome::Error(format!("OverflowError: {name}({x}, {y}) does not fit in 64 bits")),
        };
    }
    let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    Outcome::Result(Value::from(if name == "add" { x + y } else { x * y }))
}

/// Hostile or odd frames a parent must survive (ignore, or print for `stdout`), sent before the
/// reply to `spray_garbage`; the real reply is then sent twice (the duplicate must be ignored).
fn garbage_for_parent(call_id: &str) -> Vec<Vec<u8>> {
    let t = Value::from(now_secs());
    vec![
        b"\xc1\xc1garbage".to_vec(),
        Vec::new(),
        pack(&Value::Array(vec![Value::from(1), Value::from(2), Value::from(3)])),
        pack(&s("just a string")),
        pack(&map(vec![("app", s("other_app")), ("id", s(call_id)), ("type", s("response")), ("result", s("wrong app"))])),
        pack(&map(vec![("app", s(APP)), ("type", s("response")), ("timestamp", t.clone()), ("result", s("no id"))])),
        pack(&map(vec![("app", s(APP)), ("id", s("unknown-id")), ("type", s("response")), ("timestamp", t.clone()), ("result", Value::from(1))])),
        pack(&map(vec![("app", s(APP)), ("id", s("unknown-id")), ("type", s("error")), ("timestamp", t.clone()), ("error", s("x"))])),
        pack(&map(vec![("app", s(APP)), ("id", s(call_id)), ("type", s("gossip")), ("timestamp", t.clone())])),
        pack(&map(vec![("app", s(APP)), ("type", s("stdout")), ("timestamp", t.clone()), ("output", s("forwarded line"))])),
        // no type; with the call's id it would fail that call, so it carries another id
        pack(&map(vec![("app", s(APP)), ("id", s("unknown-id")), ("timestamp", t)])),
    ]
}

enum Handled {
    Ignore,
    Reply(Value),
    Spray(Value),
    Sleep(String, f64),
    Shutdown,
}

fn handle(state: &ChildState, msg: &Value) -> Handled {
    match field(msg, "type").and_then(Value::as_str) {
        Some("call") => handle_call(state, msg),
        Some("heartbeat") => {
            let Some(id) = str_field(msg, "id") else { return Handled::Ignore };
            // Echo the request's metadata (hb_timestamp included) and mark it as a response.
            let mut metadata: Vec<(Value, Value)> = match field(msg, "metadata") {
                Some(Value::Map(entries)) => entries.iter().filter(|(k, _)| k.as_str() != Some("hb_response")).cloned().collect(),
                _ => Vec::new(),
            };
            metadata.push((s("hb_response"), Value::from(true)));
            Handled::Reply(message("heartbeat", id, vec![("metadata", Value::Map(metadata))]))
        }
        Some("shutdown") => Handled::Shutdown,
        _ => Handled::Ignore, // missing or unknown type
    }
}

fn handle_call(state: &ChildState, msg: &Value) -> Handled {
    match field(msg, "namespace") {
        None | Some(Value::Nil) => {
            if state.namespace != "default" {
                return Handled::Ignore;
            }
        }
        Some(ns) if ns.as_str() == Some(state.namespace.as_str()) => {}
        Some(_) => return Handled::Ignore, // another namespace: not for us (spec 9.3)
    }
    let Some(id) = str_field(msg, "id") else { return Handled::Ignore };
    let error = |text: String| Handled::Reply(message("error", id, vec![("error", s(&text))]));
    let Some(name) = str_field(msg, "function") else {
        return error("InvalidMessageError: Message missing 'function' field".into());
    };
    if name.starts_with('_') {
        return error(format!("PermissionError: Cannot call private method '{name}'"));
    }
    let args: &[Value] = match field(msg, "args") {
        None | Some(Value::Nil) => &[],
        Some(Value::Array(items)) => items,
        Some(other) => return error(format!("TypeError: 'args' must be an array, got {}", type_name(other))),
    };
    match state.invoke(name, args) {
        Outcome::Result(result) => {
            let reply = message("response", id, vec![("result", result)]);
            if name == "spray_garbage" { Handled::Spray(reply) } else { Handled::Reply(reply) }
        }
        Outcome::Error(text) => error(text),
        Outcome::Later(secs) => Handled::Sleep(id.to_owned(), secs),
    }
}

fn fatal(text: &str) -> ! {
    eprintln!("FATAL: {text}");
    std::process::exit(1);
}

fn spawn_port() -> u16 {
    let Ok(raw) = std::env::var("COMLINK_ZMQ_PORT") else {
        fatal("COMLINK_ZMQ_PORT is not set (spawn mode needs it; use --bind otherwise)");
    };
    match raw.trim().parse::<u32>() {
        Ok(port) if raw.trim().bytes().all(|b| b.is_ascii_digit()) && (1024..=65535).contains(&port) => port as u16,
        _ => fatal(&format!("invalid COMLINK_ZMQ_PORT '{raw}': must be an integer in 1024..65535")),
    }
}

fn send_frames(sock: &zmq::Socket, envelope: &[Vec<u8>], payload: &[u8]) {
    let mut frames: Vec<&[u8]> = envelope.iter().map(Vec::as_slice).collect();
    frames.push(payload);
    if let Err(e) = sock.send_multipart(frames, 0) {
        eprintln!("mf_rust_peer child: reply dropped ({e})");
    }
}

fn run_child(opts: &Opts) -> i32 {
    let parent_pid = getppid();
    let port = if opts.bind { None } else { Some(spawn_port()) };
    catch_stop_signals();
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::ROUTER).expect("ROUTER socket");
    sock.set_linger(500).ok();
    // Replies to a parent that reads slowly wait instead of being dropped; sends time out after 1 s.
    sock.set_router_mandatory(true).ok();
    sock.set_sndtimeo(1000).ok();
    match port {
        Some(port) => {
            if let Err(e) = sock.connect(&format!("tcp://127.0.0.1:{port}")) {
                fatal(&format!("cannot connect to tcp://127.0.0.1:{port}: {e}"));
            }
        }
        None => {
            if let Err(e) = sock.bind("tcp://127.0.0.1:*") {
                fatal(&format!("cannot bind tcp://127.0.0.1:*: {e}"));
            }
            let endpoint = sock.get_last_endpoint().ok().and_then(Result::ok).unwrap_or_default();
            let bound = endpoint.rsplit(':').next().unwrap_or("");
            println!("PORT {bound}");
            std::io::stdout().flush().ok();
        }
    }
    let state = ChildState { namespace: opts.namespace.clone() };
    let (done_tx, done_rx) = mpsc::channel::<(Vec<Vec<u8>>, Vec<u8>)>();
    loop {
        if stopped() {
            break;
        }
        if getppid() != parent_pid {
            eprintln!("mf_rust_peer child: parent process died, exiting");
            break;
        }
        while let Ok((envelope, payload)) = done_rx.try_recv() {
            send_frames(&sock, &envelope, &payload);
        }
        match sock.poll(zmq::POLLIN, TICK_MS) {
            Ok(n) if n > 0 => {}
            _ => continue,
        }
        let Ok(frames) = sock.recv_multipart(zmq::DONTWAIT) else { continue };
        if frames.len() < 2 {
            continue;
        }
        let (envelope, payload) = frames.split_at(frames.len() - 1);
        let Some(msg) = unpack(&payload[0]) else { continue };
        match handle(&state, &msg) {
            Handled::Ignore => {}
            Handled::Reply(reply) => send_frames(&sock, envelope, &pack(&reply)),
            Handled::Spray(reply) => {
                let id = str_field(&msg, "id").unwrap_or("");
                for junk in garbage_for_parent(id) {
                    send_frames(&sock, envelope, &junk);
                }
                let bytes = pack(&reply);
                send_frames(&sock, envelope, &bytes);
                send_frames(&sock, envelope, &bytes);
            }
            Handled::Sleep(id, secs) => {
                let tx = done_tx.clone();
                let envelope = envelope.to_vec();
                let arg = field(&msg, "args").and_then(|a| if let Value::Array(v) = a { v.first().cloned() } else { None });
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs_f64(secs));
                    let reply = message("response", &id, vec![("result", arg.unwrap_or(Value::Nil))]);
                    tx.send((envelope, pack(&reply))).ok();
                });
            }
            Handled::Shutdown => break,
        }
    }
    drop(sock); // linger lets the last replies go out
    0
}

// ------------------------------------------------------------------------------------------
// Parent roles: the link to the worker
// ------------------------------------------------------------------------------------------

type CaseResult = Result<(), String>;

struct Link {
    _ctx: zmq::Context,
    sock: zmq::Socket,
    port: u16,
    namespace: String,
    client_name: Option<String>,
    child: Option<Child>,
    exit: Option<ExitStatus>,
    inbox: HashMap<String, (Value, Instant)>,
}

impl Link {
    fn new(namespace: &str, client_name: Option<String>, connect_port: Option<u16>) -> Result<Link, String> {
        let ctx = zmq::Context::new();
        let sock = ctx.socket(zmq::DEALER).map_err(|e| format!("DEALER socket: {e}"))?;
        sock.set_linger(0).ok();
        let port = match connect_port {
            Some(port) => {
                sock.connect(&format!("tcp://127.0.0.1:{port}")).map_err(|e| format!("connect to port {port}: {e}"))?;
                port
            }
            None => {
                sock.bind("tcp://127.0.0.1:*").map_err(|e| format!("bind tcp://127.0.0.1:*: {e}"))?;
                let endpoint = sock.get_last_endpoint().ok().and_then(Result::ok).unwrap_or_default();
                endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or(format!("bad endpoint {endpoint}"))?
            }
        };
        Ok(Link { _ctx: ctx, sock, port, namespace: namespace.into(), client_name, child: None, exit: None, inbox: HashMap::new() })
    }

    fn spawn(&mut self, command: &[String]) -> Result<(), String> {
        let child = Command::new(&command[0])
            .args(&command[1..])
            .env("COMLINK_ZMQ_PORT", self.port.to_string())
            .env("COMLINK_WORKER_MODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::io::stderr()))
            .stderr(Stdio::from(std::io::stderr()))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// The child's exit status once it has exited (None while it runs or when there is none).
    fn child_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.exit = child.try_wait().ok().flatten();
            }
        }
        self.exit
    }

    fn wait_exit(&mut self, seconds: f64) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        loop {
            if self.child_exit().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Signals the child's process group; false when the group is gone.
    fn signal_group(&self, signal: libc::c_int) -> bool {
        match &self.child {
            // SAFETY: kill has no memory-safety preconditions.
            Some(child) => unsafe { libc::kill(-(child.id() as i32), signal) == 0 },
            None => false,
        }
    }

    /// shutdown message → 3 s → SIGTERM to the group → 2 s → SIGKILL; then any stragglers.
    fn terminate_child(&mut self) {
        if self.child.is_none() {
            return;
        }
        if self.child_exit().is_none() {
            let _ = self.send(&message("shutdown", &new_id(), vec![]), 200);
            if !self.wait_exit(3.0) {
                self.signal_group(libc::SIGTERM);
                if !self.wait_exit(2.0) {
                    self.signal_group(libc::SIGKILL);
                    if let Some(child) = self.child.as_mut() {
                        self.exit = child.wait().ok();
                    }
                }
            }
        }
        if self.signal_group(libc::SIGTERM) {
            std::thread::sleep(Duration::from_millis(200));
            self.signal_group(libc::SIGKILL);
        }
    }

    fn exit_text(&mut self) -> String {
        match self.child_exit() {
            Some(status) => format!("child exited ({status})"),
            None => "child running".into(),
        }
    }

    fn send_frames(&mut self, frames: &[&[u8]], timeout_ms: i32) -> CaseResult {
        self.sock.set_sndtimeo(timeout_ms).ok();
        match self.sock.send_multipart(frames.iter().copied(), 0) {
            Ok(()) => Ok(()),
            Err(zmq::Error::EAGAIN) => Err(format!("send timed out ({})", self.exit_text())),
            Err(e) => Err(format!("send failed: {e}")),
        }
    }

    fn send(&mut self, msg: &Value, timeout_ms: i32) -> Result<String, String> {
        self.send_frames(&[b"", &pack(msg)], timeout_ms)?;
        Ok(str_field(msg, "id").unwrap_or_default().to_owned())
    }

    fn call_message(&self, function: &str, args: Vec<Value>, namespace: Option<&str>) -> Value {
        let mut fields = vec![
            ("function", s(function)),
            ("args", Value::Array(args)),
            ("namespace", s(namespace.unwrap_or(&self.namespace))),
        ];
        if let Some(name) = &self.client_name {
            fields.push(("client_name", s(name)));
        }
        fields.push(("metadata", map(vec![("timestamp_sent", Value::from(now_secs()))])));
        message("call", &new_id(), fields)
    }

    fn send_call(&mut self, function: &str, args: Vec<Value>, namespace: Option<&str>) -> Result<String, String> {
        let msg = self.call_message(function, args, namespace);
        self.send(&msg, 1000)
    }

    fn send_heartbeat(&mut self, timeout_ms: i32) -> Result<(String, f64), String> {
        let hb = now_secs();
        let msg = message("heartbeat", &new_id(), vec![("metadata", map(vec![("hb_timestamp", Value::from(hb))]))]);
        Ok((self.send(&msg, timeout_ms)?, hb))
    }

    /// Receives until every id has a reply or `timeout` seconds pass; returns the ids still
    /// missing. Stops early when the child exits or a stop signal arrives.
    fn wait_for(&mut self, ids: &[String], timeout: f64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs_f64(timeout);
        loop {
            let missing: Vec<String> = ids.iter().filter(|id| !self.inbox.contains_key(*id)).cloned().collect();
            let now = Instant::now();
            if missing.is_empty() || now >= deadline || stopped() {
                return missing;
            }
            let slice = (deadline - now).min(Duration::from_millis(50)).as_millis() as i64 + 1;
            if matches!(self.sock.poll(zmq::POLLIN, slice), Ok(n) if n > 0) {
                self.drain();
            } else if self.child_exit().is_some() {
                return missing;
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(frames) = self.sock.recv_multipart(zmq::DONTWAIT) {
            let arrived = Instant::now();
            let payload = frames.last().map(Vec::as_slice).unwrap_or(b"");
            let Some(msg) = unpack(payload) else {
                note(&format!("ignored undecodable/foreign message ({} bytes)", payload.len()));
                continue;
            };
            match field(&msg, "type").and_then(Value::as_str) {
                Some(t @ ("stdout" | "stderr")) => {
                    let output = field(&msg, "output").map(|o| o.as_str().map(str::to_owned).unwrap_or(o.to_string()));
                    note(&format!("[child {}]: {}", t.to_uppercase(), output.unwrap_or_default()));
                }
                _ => match str_field(&msg, "id") {
                    Some(id) => {
                        self.inbox.insert(id.to_owned(), (msg.clone(), arrived));
                    }
                    None => note(&format!("ignored message without id: {}", short(&msg, 200))),
                },
            }
        }
    }

    fn reply(&mut self, id: &str, timeout: f64, label: &str) -> Result<Value, String> {
        if !self.wait_for(&[id.to_owned()], timeout).is_empty() {
            return Err(match self.child_exit() {
                Some(status) => format!("no reply to {label}: child exited ({status})"),
                None if stopped() => format!("no reply to {label}: interrupted"),
                None => format!("no reply to {label} within {timeout}s"),
            });
        }
        Ok(self.inbox[id].0.clone())
    }

    fn call(&mut self, function: &str, args: Vec<Value>, timeout: f64) -> Result<Value, String> {
        let label = format!("{function}({})", args.iter().map(|a| short(a, 40)).collect::<Vec<_>>().join(", "));
        let id = self.send_call(function, args, None)?;
        self.reply(&id, timeout, &label)
    }
}

fn note(text: &str) {
    eprintln!("mf_rust_peer parent: {text}");
}

// ------------------------------------------------------------------------------------------
// Parent roles: expectations and cases
// ------------------------------------------------------------------------------------------

fn result_of(reply: &Value, label: &str) -> Result<Value, String> {
    if field(reply, "type").and_then(Value::as_str) != Some("response") {
        return Err(format!("{label}: expected a response, got {}", short(reply, 240)));
    }
    // A v4 peer may omit `result` for nothing (Python v4 does): read that as nil.
    Ok(field(reply, "result").cloned().unwrap_or(Value::Nil))
}

fn error_of(reply: &Value, label: &str) -> Result<String, String> {
    if field(reply, "type").and_then(Value::as_str) != Some("error") {
        return Err(format!("{label}: expected an error reply, got {}", short(reply, 240)));
    }
    field(reply, "error").and_then(Value::as_str).map(str::to_owned).ok_or(format!("{label}: 'error' is not a string: {}", short(reply, 240)))
}

fn expect_result(link: &mut Link, expected: Value, function: &str, args: Vec<Value>, t: f64) -> CaseResult {
    let label = format!("{function}({})", args.iter().map(|a| short(a, 60)).collect::<Vec<_>>().join(", "));
    let got = result_of(&link.call(function, args, t)?, &label)?;
    if !same(&got, &expected) {
        return Err(format!(
            "{label}: expected {} ({}), got {} ({})",
            short(&expected, 240),
            type_name(&expected),
            short(&got, 240),
            type_name(&got)
        ));
    }
    Ok(())
}

fn expect_echo(link: &mut Link, value: Value, t: f64) -> CaseResult {
    expect_result(link, value.clone(), "echo", vec![value], t)
}

fn case_heartbeat(link: &mut Link, t: f64) -> CaseResult {
    let (id, hb) = link.send_heartbeat(1000)?;
    let reply = link.reply(&id, t, "heartbeat")?;
    let mut problems = Vec::new();
    if field(&reply, "type").and_then(Value::as_str) != Some("heartbeat") {
        problems.push(format!("type {:?}", field(&reply, "type")));
    }
    if !matches!(field(&reply, "timestamp"), Some(Value::F64(_) | Value::F32(_) | Value::Integer(_))) {
        problems.push(format!("timestamp {:?}", field(&reply, "timestamp")));
    }
    let echoed = field(&reply, "metadata").and_then(|m| field(m, "hb_timestamp"));
    if !echoed.is_some_and(|v| same(v, &Value::from(hb))) {
        problems.push(format!("metadata {:?} (sent hb_timestamp {hb})", field(&reply, "metadata")));
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("bad heartbeat reply: {}", problems.join(", "))) }
}

fn case_add_ints(link: &mut Link, t: f64) -> CaseResult {
    expect_result(link, Value::from(3), "add", vec![Value::from(1), Value::from(2)], t)
}

fn case_add_floats(link: &mut Link, t: f64) -> CaseResult {
    expect_result(link, Value::from(0.75), "add", vec![Value::from(0.5), Value::from(0.25)], t)
}

fn case_primitives(link: &mut Link, t: f64) -> CaseResult {
    let values = vec![
        Value::from(true),
        Value::from(false),
        Value::from(0),
        Value::from(-1),
        Value::from(255),
        Value::from(65536),
        Value::from(1i64 << 31),
        Value::from((1i64 << 32) + 5),
        Value::from(-(1i64 << 40)),
        Value::from(1.5),
        s(""),
        s("plain"),
    ];
    for value in values {
        expect_echo(link, value, t)?;
    }
    Ok(())
}

fn case_none(link: &mut Link, t: f64) -> CaseResult {
    let got = result_of(&link.call("echo", vec![Value::Nil], t)?, "echo(nil)")?;
    if !got.is_nil() {
        return Err(format!("echo(nil) returned {}", short(&got, 240)));
    }
    let got = result_of(&link.call("nothing", vec![], t)?, "nothing()")?;
    if !got.is_nil() {
        return Err(format!("nothing() returned {} (want nil or no 'result' key)", short(&got, 240)));
    }
    Ok(())
}

fn case_nested(link: &mut Link, t: f64) -> CaseResult {
    let value = map(vec![
        ("a", Value::Array(vec![Value::from(1), map(vec![("b", Value::Array(vec![Value::from(true), Value::Nil, Value::from(1.5)]))])])),
        ("c", map(vec![("d", map(vec![("e", s("f"))]))])),
    ]);
    expect_echo(link, value, t)
}

fn case_unicode(link: &mut Link, t: f64) -> CaseResult {
    expect_echo(link, s("héllo 世界 🎉 \u{0000} zero"), t)
}

fn case_bytes(link: &mut Link, t: f64) -> CaseResult {
    let data: Vec<u8> = [0u8, 1, 255].repeat(10);
    expect_echo(link, Value::from(data.clone()), t)?;
    expect_result(link, s("bytes"), "typeOf", vec![Value::from(data)], t)
}

fn case_int64_limits(link: &mut Link, t: f64) -> CaseResult {
    for value in [Value::from(i64::MAX), Value::from(i64::MIN), Value::from(u64::MAX), Value::from((1i64 << 53) + 1)] {
        expect_echo(link, value, t)?;
    }
    expect_result(link, s("bigint"), "typeOf", vec![Value::from(i64::MAX)], t)?;
    expect_result(link, s("number"), "typeOf", vec![Value::from(5)], t)
}

fn case_remote_error(link: &mut Link, t: f64) -> CaseResult {
    let error = error_of(&link.call("fail", vec![s("boom")], t)?, "fail('boom')")?;
    if !error.starts_with("TypeError: boom") {
        return Err(format!("error text {error:?} does not start with 'TypeError: boom'"));
    }
    Ok(())
}

fn case_missing_function(link: &mut Link, t: f64) -> CaseResult {
    let error = error_of(&link.call("no_such_fn", vec![], t)?, "no_such_fn()")?;
    if !error.contains("no_such_fn") || !error.contains("not found") {
        return Err(format!("error text {error:?} lacks 'no_such_fn' / 'not found'"));
    }
    Ok(())
}

const FORBIDDEN_NAMES: &[&str] = &["_hidden", "constructor", "run", "stop", "toString", "hasOwnProperty", "__proto__"];

fn case_private_function(link: &mut Link, t: f64) -> CaseResult {
    let mut ids = Vec::new();
    for name in FORBIDDEN_NAMES {
        ids.push(link.send_call(name, vec![], None)?);
    }
    let missing = link.wait_for(&ids, t);
    let mut problems = Vec::new();
    for (name, id) in FORBIDDEN_NAMES.iter().zip(&ids) {
        if missing.contains(id) {
            problems.push(format!("{name}: no reply"));
            continue;
        }
        let reply = &link.inbox[id].0;
        if field(reply, "type").and_then(Value::as_str) != Some("error") {
            problems.push(format!("{name}: {}", short(reply, 120)));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

fn case_list_functions(link: &mut Link, t: f64) -> CaseResult {
    let names = result_of(&link.call("listFunctions", vec![], t)?, "listFunctions()")?;
    let Value::Array(items) = &names else {
        return Err(format!("listFunctions returned {}, not an array", short(&names, 240)));
    };
    let has = |n: &str| items.iter().any(|v| v.as_str() == Some(n));
    let absent: Vec<&str> = ["add", "echo", "typeOf", "fail", "nothing", "sleep"].into_iter().filter(|n| !has(n)).collect();
    let extra: Vec<&str> = ["_hidden", "constructor", "run", "stop", "toString", "listFunctions"].into_iter().filter(|n| has(n)).collect();
    if absent.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {absent:?}, unexpected {extra:?}, got {}", short(&names, 240)))
    }
}

fn case_namespace_mismatch(link: &mut Link, t: f64) -> CaseResult {
    let id = link.send_call("add", vec![Value::from(1), Value::from(1)], Some("other"))?;
    if link.wait_for(&[id.clone()], 1.0).is_empty() {
        return Err(format!("call in namespace 'other' was answered: {}", short(&link.inbox[&id].0, 240)));
    }
    expect_result(link, Value::from(4), "add", vec![Value::from(2), Value::from(2)], t)
}

fn case_pipelined(link: &mut Link, t: f64) -> CaseResult {
    const COUNT: i64 = 250;
    let mut ids = Vec::new();
    for i in 0..COUNT {
        ids.push(link.send_call("add", vec![Value::from(i), Value::from(i)], None)?);
    }
    let missing = link.wait_for(&ids, t.max(10.0));
    if !missing.is_empty() {
        return Err(format!("{} of {COUNT} replies missing", missing.len()));
    }
    let wrong: Vec<String> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let reply = &link.inbox[id].0;
            let ok = field(reply, "type").and_then(Value::as_str) == Some("response")
                && field(reply, "result").is_some_and(|r| same(r, &Value::from(2 * i as i64)));
            (!ok).then(|| format!("{i}: {}", short(reply, 100)))
        })
        .collect();
    if wrong.is_empty() { Ok(()) } else { Err(format!("{} wrong results, first: {}", wrong.len(), wrong[0])) }
}

fn case_payload_1mib(link: &mut Link, t: f64) -> CaseResult {
    let data = random_bytes(1024 * 1024);
    let got = result_of(&link.call("echo", vec![Value::from(data.clone())], t.max(10.0))?, "echo(1 MiB)")?;
    match &got {
        Value::Binary(b) if *b == data => Ok(()),
        Value::Binary(b) => Err(format!("got bin of length {} that differs", b.len())),
        other => Err(format!("got {}", type_name(other))),
    }
}

fn case_garbage(link: &mut Link, t: f64) -> CaseResult {
    let wrong_app_id = new_id();
    let no_type_id = new_id();
    let ns = s(&link.namespace.clone());
    let mut wrong_app = message("call", &wrong_app_id, vec![("function", s("add")), ("args", Value::Array(vec![Value::from(1), Value::from(1)])), ("namespace", ns.clone())]);
    if let Value::Map(entries) = &mut wrong_app {
        entries[0].1 = s("comlink_ipc_v3");
    }
    let no_type = map(vec![("app", s(APP)), ("id", s(&no_type_id)), ("timestamp", Value::from(now_secs()))]);
    let no_id = map(vec![
        ("app", s(APP)),
        ("type", s("call")),
        ("timestamp", Value::from(now_secs())),
        ("function", s("add")),
        ("args", Value::Array(vec![Value::from(1), Value::from(1)])),
        ("namespace", ns.clone()),
    ]);
    link.send_frames(&[b"", b"\xc1\xc1garbage"], 1000)?;
    link.send_frames(&[b"", &pack(&Value::Array(vec![Value::from(1), Value::from(2), Value::from(3)]))], 1000)?;
    link.send_frames(&[b"", &pack(&wrong_app)], 1000)?;
    link.send_frames(&[b"", &pack(&no_type)], 1000)?;
    link.send_frames(&[b"", &pack(&no_id)], 1000)?;
    link.send_frames(&[b"", b""], 1000)?; // an envelope with an empty payload
    link.send_frames(&[b""], 1000)?; // a lone empty frame
    expect_result(link, Value::from(5), "add", vec![Value::from(2), Value::from(3)], t)?;
    let no_function = message("call", &new_id(), vec![("args", Value::Array(vec![])), ("namespace", ns), ("metadata", map(vec![("timestamp_sent", Value::from(now_secs()))]))]);
    let id = link.send(&no_function, 1000)?;
    let reply = link.reply(&id, t, "call without 'function'")?;
    error_of(&reply, "call without 'function'")?;
    link.wait_for(&["never-arrives".to_owned()], 0.2); // give stray replies a moment to show up
    let answered: Vec<&str> = [("wrong app", &wrong_app_id), ("no type", &no_type_id)]
        .into_iter()
        .filter(|(_, id)| link.inbox.contains_key(*id))
        .map(|(label, _)| label)
        .collect();
    if answered.is_empty() { Ok(()) } else { Err(format!("child answered garbage: {answered:?}")) }
}

fn case_concurrency(link: &mut Link, t: f64) -> CaseResult {
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(link.send_call("sleep", vec![Value::from(300)], None)?);
    }
    let (hb_id, _) = link.send_heartbeat(1000)?;
    let mut all = ids.clone();
    all.push(hb_id.clone());
    let missing = link.wait_for(&all, t.max(2.0));
    if !missing.is_empty() {
        return Err(format!("5 x sleep(300) + heartbeat: {} of 6 replies missing", missing.len()));
    }
    let finished: Vec<Instant> = ids.iter().map(|id| link.inbox[id].1).collect();
    let last = finished.iter().max().unwrap().duration_since(started).as_secs_f64();
    let first = *finished.iter().min().unwrap();
    let mut problems = Vec::new();
    if last > 1.2 {
        problems.push(format!("5 x sleep(300) took {last:.3}s (> 1.2s)"));
    }
    for id in &ids {
        let reply = &link.inbox[id].0;
        if field(reply, "type").and_then(Value::as_str) != Some("response") || !field(reply, "result").is_some_and(|r| same(r, &Value::from(300))) {
            problems.push(format!("wrong sleep reply: {}", short(reply, 120)));
            break;
        }
    }
    let (hb_reply, hb_at) = &link.inbox[&hb_id];
    if field(hb_reply, "type").and_then(Value::as_str) != Some("heartbeat") {
        problems.push(format!("heartbeat reply: {}", short(hb_reply, 120)));
    }
    if *hb_at >= first {
        problems.push(format!(
            "heartbeat answered {:.3}s in, after the first sleep finished at {:.3}s",
            hb_at.duration_since(started).as_secs_f64(),
            first.duration_since(started).as_secs_f64()
        ));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

fn case_shutdown(link: &mut Link, _t: f64) -> CaseResult {
    link.send(&message("shutdown", &new_id(), vec![]), 1000)?;
    if !link.wait_exit(3.0) {
        return Err("child still running 3s after shutdown".into());
    }
    match link.child_exit() {
        Some(status) if status.code() == Some(0) => Ok(()),
        Some(status) => Err(format!("child exited with {status}")),
        None => Err("no child to stop".into()),
    }
}

type Case = fn(&mut Link, f64) -> CaseResult;

const CASES: &[(&str, Case)] = &[
    ("heartbeat", case_heartbeat),
    ("add_ints", case_add_ints),
    ("add_floats", case_add_floats),
    ("primitives", case_primitives),
    ("none", case_none),
    ("nested", case_nested),
    ("unicode", case_unicode),
    ("bytes", case_bytes),
    ("int64_limits", case_int64_limits),
    ("remote_error", case_remote_error),
    ("missing_function", case_missing_function),
    ("private_function", case_private_function),
    ("list_functions", case_list_functions),
    ("namespace_mismatch", case_namespace_mismatch),
    ("pipelined_200", case_pipelined),
    ("payload_1mib", case_payload_1mib),
    ("garbage", case_garbage),
    ("concurrency", case_concurrency),
    ("shutdown", case_shutdown),
];

// ------------------------------------------------------------------------------------------
// Parent roles: driver
// ------------------------------------------------------------------------------------------

fn emit(record: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{record}").ok();
    out.flush().ok();
}

#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn record(&mut self, case: &str, result: CaseResult) {
        let detail = result.err();
        emit(serde_json::json!({"case": case, "ok": detail.is_none(), "detail": detail.clone().unwrap_or_default()}));
        if detail.is_none() { self.passed += 1 } else { self.failed += 1 }
    }

    fn finish(&self) -> i32 {
        emit(serde_json::json!({"done": true, "passed": self.passed, "failed": self.failed}));
        if self.failed == 0 { 0 } else { 1 }
    }
}

/// Heartbeats until the worker answers (the DEALER cannot send before a peer is there, so the
/// send is retried in 100 ms slices while watching for an early exit).
fn wait_ready(link: &mut Link, timeout: f64) -> CaseResult {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let id = loop {
        if let Some(status) = link.child_exit() {
            return Err(format!("child exited ({status}) before answering a heartbeat"));
        }
        if stopped() {
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("child never connected within {timeout}s"));
        }
        if let Ok((id, _)) = link.send_heartbeat(100) {
            break id;
        }
    };
    let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
    let reply = link.reply(&id, left, "readiness heartbeat")?;
    if field(&reply, "type").and_then(Value::as_str) != Some("heartbeat") {
        return Err(format!("readiness heartbeat answered with {}", short(&reply, 240)));
    }
    Ok(())
}

fn run_cases(link: &mut Link, call_timeout: f64, tally: &mut Tally, skip: &[&str]) {
    for (name, case) in CASES {
        if skip.contains(name) {
            continue;
        }
        if stopped() {
            tally.record("interrupted", Err("parent got SIGINT/SIGTERM".into()));
            return;
        }
        let result = case(link, call_timeout);
        tally.record(name, result);
    }
}

fn run_parent(opts: &Opts) -> i32 {
    catch_stop_signals();
    let mut tally = Tally::default();
    let (Some(exec), Some(script)) = (&opts.exec, &opts.script) else { usage("parent needs --exec and --script") };
    let mut command = vec![exec.clone()];
    command.extend(opts.exec_args.iter().cloned());
    command.push(script.clone());
    command.extend(opts.script_args.iter().cloned());
    let mut link = match Link::new(&opts.namespace, opts.client_name.clone(), None) {
        Ok(link) => link,
        Err(e) => {
            tally.record("ready", Err(e));
            return tally.finish();
        }
    };
    let ready = link.spawn(&command).and_then(|()| wait_ready(&mut link, opts.timeout));
    match ready {
        Ok(()) => run_cases(&mut link, opts.call_timeout, &mut tally, &[]),
        Err(e) => tally.record("ready", Err(format!("{command:?}: {e}"))),
    }
    link.terminate_child();
    tally.finish()
}

/// Reads `services.json` until `service_id` has an entry whose pid is alive; returns its port.
fn discover_port(service_id: &str, registry_dir: Option<&str>, timeout: f64) -> Result<u16, String> {
    let dir = match registry_dir {
        Some(dir) => dir.to_owned(),
        None => format!("{}/.multifrost", std::env::var("HOME").unwrap_or_default()),
    };
    let path = format!("{dir}/services.json");
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
                let entry = &doc[service_id];
                if let (Some(port), Some(pid)) = (entry["port"].as_u64(), entry["pid"].as_i64()) {
                    // SAFETY: kill with signal 0 only checks that the process exists.
                    if unsafe { libc::kill(pid as i32, 0) } == 0 && port > 0 && port <= 65535 {
                        return Ok(port as u16);
                    }
                }
            }
        }
        if Instant::now() >= deadline || stopped() {
            return Err(format!("service '{service_id}' not found in {path} within {timeout}s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_connect(opts: &Opts) -> i32 {
    catch_stop_signals();
    let mut tally = Tally::default();
    let port = match (opts.port, &opts.service) {
        (Some(port), _) => Ok(port),
        (None, Some(service)) => discover_port(service, opts.registry_dir.as_deref(), opts.timeout),
        (None, None) => usage("connect needs --port or --service"),
    };
    let link = port.and_then(|port| Link::new(&opts.namespace, opts.client_name.clone(), Some(port)));
    match link {
        Ok(mut link) => match wait_ready(&mut link, opts.timeout) {
            // A parent never stops a service it did not spawn: no shutdown case.
            Ok(()) => run_cases(&mut link, opts.call_timeout, &mut tally, &["shutdown"]),
            Err(e) => tally.record("ready", Err(e)),
        },
        Err(e) => tally.record("ready", Err(e)),
    }
    tally.finish()
}

// ------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------

struct Opts {
    role: String,
    namespace: String,
    bind: bool,
    exec: Option<String>,
    exec_args: Vec<String>,
    script: Option<String>,
    script_args: Vec<String>,
    timeout: f64,
    call_timeout: f64,
    client_name: Option<String>,
    port: Option<u16>,
    service: Option<String>,
    registry_dir: Option<String>,
}

const USAGE: &str = "usage: mf_rust_peer child [--namespace NS] [--bind]
       mf_rust_peer parent --exec EXE [--exec-arg ARG]... --script PATH [--script-arg ARG]...
                           [--timeout S] [--call-timeout S] [--namespace NS] [--client-name NAME]
       mf_rust_peer connect (--port N | --service ID [--registry-dir DIR])
                           [--timeout S] [--call-timeout S] [--namespace NS] [--client-name NAME]";

fn usage(problem: &str) -> ! {
    eprintln!("{USAGE}\nmf_rust_peer: error: {problem}");
    std::process::exit(2);
}

fn parse_args(argv: Vec<String>) -> Opts {
    let mut opts = Opts {
        role: String::new(),
        namespace: "default".into(),
        bind: false,
        exec: None,
        exec_args: Vec::new(),
        script: None,
        script_args: Vec::new(),
        timeout: 10.0,
        call_timeout: 5.0,
        client_name: None,
        port: None,
        service: None,
        registry_dir: None,
    };
    let mut args = argv.into_iter();
    opts.role = args.next().unwrap_or_else(|| usage("a role is required"));
    if !["child", "parent", "connect"].contains(&opts.role.as_str()) {
        usage(&format!("invalid choice: '{}' (choose from 'child', 'parent', 'connect')", opts.role));
    }
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| args.next()).unwrap_or_else(|| usage(&format!("{name} needs a value")));
        let seconds = |text: String, name: &str| text.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).unwrap_or_else(|| usage(&format!("{name}: not a number of seconds")));
        let role = opts.role.as_str();
        match (role, flag.as_str()) {
            (_, "--namespace") => opts.namespace = value("--namespace"),
            ("child", "--bind") => opts.bind = true,
            ("child", "--worker") => {} // Python v4 parents append it
            ("parent", "--exec") => opts.exec = Some(value("--exec")),
            ("parent", "--exec-arg") => opts.exec_args.push(value("--exec-arg")),
            ("parent", "--script") => opts.script = Some(value("--script")),
            ("parent", "--script-arg") => opts.script_args.push(value("--script-arg")),
            ("parent" | "connect", "--timeout") => opts.timeout = seconds(value("--timeout"), "--timeout"),
            ("parent" | "connect", "--call-timeout") => opts.call_timeout = seconds(value("--call-timeout"), "--call-timeout"),
            ("parent" | "connect", "--client-name") => opts.client_name = Some(value("--client-name")),
            ("connect", "--port") => {
                let text = value("--port");
                opts.port = Some(text.parse().ok().filter(|p| *p > 0).unwrap_or_else(|| usage(&format!("--port: bad port {text:?}"))));
            }
            ("connect", "--service") => opts.service = Some(value("--service")),
            ("connect", "--registry-dir") => opts.registry_dir = Some(value("--registry-dir")),
            _ => usage(&format!("unrecognized argument for role {role}: {arg}")),
        }
    }
    opts
}

fn main() {
    let opts = parse_args(std::env::args().skip(1).collect());
    let code = match opts.role.as_str() {
        "child" => run_child(&opts),
        "parent" => run_parent(&opts),
        _ => run_connect(&opts),
    };
    std::process::exit(code);
}
