// The dashboard page's script (/dashboard.js): plain browser JavaScript, no build step. It keeps the
// tree in the DOM up to date from the SSE stream (snapshots and transitions), computes calls/s from
// successive snapshots, and draws the selected worker's connection machine with mermaid.
export const PAGE_SCRIPT = String.raw`
"use strict";
(function () {
  var elements = new Map();
  var rates = new Map();
  var history = {};
  var snapshotByPath = new Map();
  var selected = null;
  var machines = null;
  var rendered = false;
  var renderCount = 0;
  var treeEl = document.getElementById("tree");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(n, digits, unit) {
    return n === undefined || n === null ? "–" : Number(n).toFixed(digits) + unit;
  }
  function bytes(n) {
    if (n === undefined || n === null) return "–";
    return (n / 1048576).toFixed(1) + " MB";
  }
  function time(at) {
    var d = new Date(at);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  function lastSegment(path) {
    var i = path.lastIndexOf("/");
    return i < 0 ? path : path.slice(i + 1);
  }

  function setState(e, state) {
    if (e.dataset.state === state) return;
    e.dataset.state = state;
    e.querySelector(":scope > .head > .state").textContent = state;
  }

  function nodeElement(snap) {
    var e = elements.get(snap.path);
    if (e && e.dataset.kind === snap.kind) return e;
    e = el("div", "node");
    e.dataset.path = snap.path;
    e.dataset.kind = snap.kind;
    var head = el("div", "head");
    head.appendChild(el("span", "name", lastSegment(snap.path)));
    head.appendChild(el("span", "kind", snap.kind));
    head.appendChild(el("span", "state", ""));
    head.appendChild(el("span", "figures restarts", ""));
    e.appendChild(head);
    if (snap.kind === "worker") {
      e.appendChild(el("div", "figures metrics", ""));
      e.appendChild(el("div", "lastexit", ""));
      e.addEventListener("click", function (event) { event.stopPropagation(); select(snap.path); });
    } else {
      e.appendChild(el("div", "children"));
    }
    elements.set(snap.path, e);
    return e;
  }

  function callRate(snap, at) {
    var total = snap.calls.ok + snap.calls.failed;
    var prev = rates.get(snap.path);
    if (!prev || total < prev.total) { rates.set(snap.path, { total: total, at: at, rate: undefined }); return undefined; }
    if (at - prev.at < 400) return prev.rate;
    var rate = ((total - prev.total) * 1000) / (at - prev.at);
    rates.set(snap.path, { total: total, at: at, rate: rate });
    return rate;
  }

  function workerFigures(snap, at) {
    var rate = callRate(snap, at);
    return [
      "pid " + (snap.pid === undefined ? "–" : snap.pid),
      "calls/s " + fmt(rate, 1, ""),
      "p99 " + fmt(snap.latencyMs.p99, 2, " ms"),
      "RTT " + fmt(snap.heartbeatRttMs, 2, " ms"),
      "CPU " + fmt(snap.cpuPercent, 1, " %"),
      "RSS " + bytes(snap.rssBytes),
      "ok " + snap.calls.ok + " / failed " + snap.calls.failed,
    ];
  }

  function fill(container, parts) {
    container.textContent = "";
    parts.forEach(function (part) { container.appendChild(el("span", "", part)); });
  }

  function update(snap, container, at, seen) {
    var e = nodeElement(snap);
    seen.add(snap.path);
    snapshotByPath.set(snap.path, snap);
    if (e.parentNode !== container) container.appendChild(e);
    setState(e, snap.state);
    e.querySelector(":scope > .head > .restarts").textContent = "restarts " + snap.restarts;
    if (snap.kind === "worker") {
      var figures = workerFigures(snap, at);
      e.dataset.figures = figures.join(" | ");
      fill(e.querySelector(":scope > .metrics"), figures);
      e.querySelector(":scope > .lastexit").textContent = snap.lastExit ? "last exit: " + snap.lastExit.reason + " at " + time(snap.lastExit.at) : "";
      if (snap.path === selected) showFigures(figures);
    } else {
      var children = e.querySelector(":scope > .children");
      snap.children.forEach(function (child, i) {
        update(child, children, at, seen);
        var childEl = elements.get(child.path);
        if (children.children[i] !== childEl) children.insertBefore(childEl, children.children[i] || null);
      });
    }
  }

  function onSnapshot(snap) {
    if (snap.error) return;
    var at = Date.now();
    var seen = new Set();
    update(snap, treeEl, at, seen);
    elements.forEach(function (e, path) {
      if (!seen.has(path)) { e.remove(); elements.delete(path); }
    });
    document.getElementById("root-state").textContent = snap.id + ": " + snap.state;
    document.body.dataset.rootState = snap.state;
    if (selected) highlight();
  }

  function onTransition(event) {
    var list = history[event.path] || (history[event.path] = []);
    list.push(event);
    if (list.length > 50) list.splice(0, list.length - 50);
    var e = elements.get(event.path);
    if (e) setState(e, event.to);
    if (event.path === selected) { showTransitions(); highlight(); }
  }

  function showFigures(figures) {
    fill(document.getElementById("detail-figures"), figures);
  }

  function showTransitions() {
    var box = document.getElementById("transitions");
    var body = box.querySelector("tbody");
    body.textContent = "";
    (history[selected] || []).slice().reverse().forEach(function (t) {
      var row = el("tr");
      row.appendChild(el("td", "t", time(t.at)));
      row.appendChild(el("td", "", t.from + " → " + t.to));
      row.appendChild(el("td", "", t.reason));
      body.appendChild(row);
    });
    box.hidden = false;
  }

  function currentState() {
    var e = elements.get(selected);
    return e ? e.dataset.state : undefined;
  }

  function stateIdOf(state) {
    var ids = machines.connection.ids;
    var paths = Object.keys(ids);
    var path = paths.find(function (p) { return p === state; }) || paths.find(function (p) { return p.split(".").pop() === state; });
    return path === undefined ? undefined : { id: ids[path], path: path };
  }

  /** A state's node in mermaid's SVG: its id is "<render id>-state-<mermaid id>-<n>". */
  function diagramNode(svg, id) {
    if (!id) return null;
    var pattern = new RegExp("-state-" + id + "-\\d+$");
    var all = svg.querySelectorAll("g[id]");
    for (var i = 0; i < all.length; i++) if (pattern.test(all[i].id)) return all[i];
    return null;
  }

  function highlight() {
    var box = document.getElementById("diagram");
    var svg = box.querySelector("svg");
    if (!svg || !machines) return;
    svg.querySelectorAll(".mf-current, .mf-active").forEach(function (n) {
      n.classList.remove("mf-current", "mf-active");
      n.removeAttribute("data-current");
    });
    var state = currentState();
    var found = state && stateIdOf(state);
    box.dataset.current = state || "";
    if (!found) return;
    var node = diagramNode(svg, found.id);
    if (node) {
      node.classList.add("mf-current");
      node.setAttribute("data-current", state);
      node.setAttribute("data-state-id", found.id);
      if (box.dataset.scrolledTo !== found.id) {
        box.dataset.scrolledTo = found.id;
        var r = node.getBoundingClientRect();
        var b = box.getBoundingClientRect();
        box.scrollLeft += r.left - b.left - b.width / 2 + r.width / 2;
        box.scrollTop += r.top - b.top - b.height / 2 + r.height / 2;
      }
    }
    var parts = found.path.split(".");
    for (var i = parts.length - 1; i > 0; i--) {
      var parent = diagramNode(svg, machines.connection.ids[parts.slice(0, i).join(".")]);
      if (parent) parent.classList.add("mf-active");
    }
  }

  function renderDiagram() {
    var box = document.getElementById("diagram");
    box.hidden = false;
    if (rendered || !machines || !window.mermaid) { highlight(); return; }
    rendered = true;
    window.mermaid.render("machine-connection-" + renderCount++, machines.connection.mermaid).then(function (result) {
      box.innerHTML = result.svg;
      box.dataset.rendered = "true";
      highlight();
    }, function (error) {
      rendered = false;
      box.textContent = "Could not draw the machine: " + error;
    });
  }

  function select(path) {
    if (selected) { var old = elements.get(selected); if (old) old.classList.remove("selected"); }
    selected = path;
    var e = elements.get(path);
    if (e) e.classList.add("selected");
    document.getElementById("detail").dataset.path = path;
    document.getElementById("detail-title").textContent = path;
    document.getElementById("detail-empty").hidden = true;
    var snap = snapshotByPath.get(path);
    if (snap) showFigures(workerFigures(snap, Date.now()));
    showTransitions();
    renderDiagram();
  }

  if (window.mermaid) window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "default" });
  fetch("/machines.json").then(function (r) { return r.json(); }).then(function (m) {
    machines = m;
    if (selected) renderDiagram();
  });

  var link = document.getElementById("link");
  var source = new EventSource("/events");
  source.addEventListener("open", function () { link.dataset.live = "true"; link.textContent = "live"; });
  source.addEventListener("error", function () { link.dataset.live = "false"; link.textContent = "disconnected, retrying…"; });
  source.addEventListener("history", function (m) {
    history = JSON.parse(m.data);
    if (selected) showTransitions();
  });
  source.addEventListener("snapshot", function (m) { onSnapshot(JSON.parse(m.data)); });
  source.addEventListener("transition", function (m) { onTransition(JSON.parse(m.data)); });
})();
`;
