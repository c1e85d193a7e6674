/** The dashboard's page: HTML and CSS of our own; the script is /dashboard.js, mermaid /mermaid.min.js. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Multifrost dashboard</title>
<style>
  :root { color-scheme: light; --ok: #1f9d55; --warn: #d69e2e; --bad: #e53e3e; --busy: #3182ce; --restart: #dd6b20; --off: #718096; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; background: #f7fafc; }
  header { display: flex; align-items: center; gap: 12px; padding: 10px 16px; background: #1a202c; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  #link { margin-left: auto; font-size: 12px; }
  #link[data-live="true"]::before { content: "\\25CF  "; color: #48bb78; }
  #link[data-live="false"]::before { content: "\\25CF  "; color: #f56565; }
  main { display: grid; grid-template-columns: minmax(380px, 1fr) minmax(480px, 1.5fr); gap: 16px; padding: 16px; }
  section { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 12px; min-width: 0; }
  h2 { font-size: 14px; margin: 0 0 8px; color: #4a5568; }
  .node { border-left: 4px solid var(--c, var(--off)); padding: 6px 8px; margin: 6px 0; background: #fff; border-radius: 4px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
  .node[data-kind="worker"] { cursor: pointer; }
  .node[data-kind="worker"]:hover, .node.selected { background: #ebf8ff; }
  .children { margin-left: 18px; }
  .head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
  .name { font-weight: 600; }
  .kind { font-size: 11px; color: #718096; }
  .state { font-size: 12px; font-weight: 600; color: #fff; background: var(--c, var(--off)); padding: 0 8px; border-radius: 10px; }
  .figures { font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; color: #4a5568; }
  .figures { display: flex; flex-wrap: wrap; column-gap: 12px; }
  .figures span { white-space: nowrap; }
  .lastexit { font-size: 12px; color: #9c4221; }
  [data-state="connected"], [data-state="running"] { --c: var(--ok); }
  [data-state="degraded"], [data-state="half-open"] { --c: var(--warn); }
  [data-state="circuit-open"], [data-state="failed"] { --c: var(--bad); }
  [data-state="idle"], [data-state="spawning"], [data-state="connecting"], [data-state="starting"] { --c: var(--busy); }
  [data-state="restarting"] { --c: var(--restart); }
  [data-state="stopping"], [data-state="stopped"] { --c: var(--off); }
  #detail-empty { color: #718096; }
  #diagram { overflow: auto; max-height: 62vh; border: 1px solid #edf2f7; border-radius: 6px; padding: 4px; }
  #diagram svg { max-width: none !important; width: 2000px; height: auto; }
  #diagram .mf-current rect, #diagram .mf-current path, #diagram .mf-current polygon { fill: #f6ad55 !important; stroke: #c05621 !important; stroke-width: 3px !important; }
  #diagram .mf-active > rect, #diagram .mf-active > path { stroke: #c05621 !important; stroke-width: 2px !important; }
  table { border-collapse: collapse; width: 100%; font-size: 12px; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #edf2f7; vertical-align: top; }
  td.t { font-family: ui-monospace, monospace; white-space: nowrap; color: #718096; }
  #transitions { max-height: 30vh; overflow: auto; margin-top: 10px; }
</style>
</head>
<body>
<header><h1>Multifrost</h1><span id="root-state"></span><span id="link" data-live="false">connecting…</span></header>
<main>
  <section><h2>Supervision tree</h2><div id="tree"></div></section>
  <section id="detail">
    <h2 id="detail-title">Worker</h2>
    <p id="detail-empty">Click a worker to see its connection machine and its recent transitions.</p>
    <div id="detail-figures" class="figures"></div>
    <div id="diagram" hidden></div>
    <div id="transitions" hidden><table><thead><tr><th>time</th><th>from → to</th><th>reason</th></tr></thead><tbody></tbody></table></div>
  </section>
</main>
<script src="/mermaid.min.js"></script>
<script src="/dashboard.js"></script>
</body>
</html>
`;
