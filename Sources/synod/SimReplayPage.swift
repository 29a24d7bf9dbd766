import Foundation
import SynodSim

/// `synod sim --seed N --html FILE`: one self-contained HTML file (no network, no library)
/// that replays a recorded run step by step. The replay is embedded as JSON; the page's
/// HTML, CSS and JavaScript are below.
enum SimReplayPage {
    /// The page for `replay`; with `tour`, the scenario's title and description head it, with
    /// a link to the tour's index (`index.html` beside it).
    static func html(_ replay: SimReplay, tour: SimTour? = nil) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(replay)
        // Inside a <script> element: no "<" may appear raw ("</script>", "<!--"); in JSON it
        // can only occur inside strings, where \u003c means the same.
        let json = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
        var title = "Synod replay: seed \(replay.seed)" + (replay.breaks.isEmpty ? "" : " (--break \(replay.breaks.joined(separator: ",")))")
        var intro = ""
        if let tour {
            title = "Synod tour: \(tour.title)"
            intro = "<nav class=\"tournav\"><a href=\"index.html\">← All tour scenarios</a> · scenario <code>\(escape(tour.name))</code>, seed \(replay.seed)</nav>"
                + "<p class=\"tourtext\" id=\"tourtext\">\(escape(tour.description))</p>"
        }
        return template
            .replacingOccurrences(of: "@@TITLE@@", with: escape(title))
            .replacingOccurrences(of: "@@TOUR@@", with: intro)
            .replacingOccurrences(of: "@@REPLAY_JSON@@", with: json)
    }

    static func write(_ replay: SimReplay, to path: String, tour: SimTour? = nil) throws {
        let page = try html(replay, tour: tour)
        try Data(page.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let template = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>
  :root { --bg: #fbfbf8; --fg: #16181d; --muted: #4a505c; --line: #c9ccd3; --panel: #ffffff;
          --leader: #8a5a00; --leaderbg: #ffe9b3; --cand: #8f3b00; --candbg: #ffd7bf; --foll: #1d4f91; --follbg: #dbe8fb;
          --down: #555; --downbg: #e2e2e2; --bad: #a1001f; --badbg: #ffe0e6; --ok: #125f2a; --focus: #0050d0; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 10px 16px; border-bottom: 1px solid var(--line); background: var(--panel); }
  h1 { font-size: 19px; margin: 0 0 2px; }
  .meta { color: var(--muted); font-size: 13px; }
  .tournav { font-size: 13px; margin: 2px 0; } .tournav a { color: #0b4fb3; }
  .tourtext { margin: 4px 0 6px; max-width: 1100px; }
  main { display: grid; grid-template-columns: minmax(420px, 1.2fr) minmax(340px, 1fr); gap: 12px; padding: 12px 16px; }
  .controls { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; padding: 8px 16px; background: var(--panel); border-bottom: 1px solid var(--line); }
  button { font: inherit; padding: 4px 10px; border: 1px solid #6b7280; border-radius: 5px; background: #f3f4f6; color: var(--fg); cursor: pointer; min-width: 36px; }
  button:hover { background: #e5e7eb; }
  button:focus-visible, input:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
  #where { font-variant-numeric: tabular-nums; margin-left: 8px; }
  .timeline { padding: 6px 16px 2px; background: var(--panel); border-bottom: 1px solid var(--line); }
  #timeline { width: 100%; }
  #marks { position: relative; height: 10px; margin: 0 8px; }
  #marks span { position: absolute; top: 0; width: 2px; height: 10px; }
  .m-fault { background: #b42318; } .m-role { background: #b7791f; } .m-member { background: #2f6fdb; } .m-viol { background: #7a00c2; width: 4px !important; }
  svg { width: 100%; height: auto; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
  .caption { background: #fffbe6; border: 1px solid #e5d48a; border-radius: 8px; padding: 10px 12px; margin-top: 10px; min-height: 72px; }
  .caption b { color: #3b2f00; }
  .nodes { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px; }
  .node { background: var(--panel); border: 2px solid var(--line); border-radius: 8px; padding: 6px 8px; font-size: 13px; }
  .node h3 { margin: 0 0 4px; font-size: 15px; }
  .node.leader { border-color: #d39a00; } .node.candidate { border-color: #e0702b; }
  .node.down, .node.refused, .node.removed { opacity: .75; border-style: dashed; }
  .node dl { display: grid; grid-template-columns: auto 1fr; gap: 0 8px; margin: 0; }
  .node dt { color: var(--muted); } .node dd { margin: 0; font-variant-numeric: tabular-nums; }
  .changed { background: #fff3b0; }
  h2 { font-size: 15px; margin: 12px 0 6px; }
  ul.events { list-style: none; padding: 0; margin: 0; font-size: 13px; max-height: 260px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); }
  ul.events li { padding: 3px 8px; border-bottom: 1px solid #eceef2; }
  .k-fault { color: #8c1a10; font-weight: 600; } .k-violation { color: var(--bad); font-weight: 700; } .k-role { color: #6b4500; font-weight: 600; }
  .k-chosen { color: var(--ok); font-weight: 600; } .k-membership { color: #1d4f91; font-weight: 600; } .k-dropped { color: #8c1a10; }
  #violation { display: none; border: 2px solid var(--bad); background: var(--badbg); border-radius: 8px; padding: 8px 12px; margin-top: 10px; }
  #violation.show { display: block; }
  #violation.here { box-shadow: 0 0 0 4px #ffb3c1; }
  #violation a { color: #5a0010; cursor: pointer; text-decoration: underline; }
  table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #d3a3ad; padding: 2px 6px; text-align: left; }
  .note { color: var(--muted); font-size: 12.5px; }
  #grid { overflow-x: auto; }
  table.grid { border-collapse: collapse; font-size: 12px; background: var(--panel); }
  table.grid th, table.grid td { border: 1px solid var(--line); padding: 1px 3px; text-align: center; min-width: 30px; font-variant-numeric: tabular-nums; }
  table.grid th { color: var(--muted); font-weight: 600; }
  table.grid tr.dim td { opacity: .6; }
  .cell { display: inline-block; padding: 0 3px; border-radius: 3px; }
  .s-applied { background: #cdeccf; color: #0d4a1f; } .s-chosen { background: #8fd19e; color: #08310f; font-weight: 700; }
  .s-accepted { background: #dbe4ff; color: #1e3a8a; } .s-snapshot { background: #e5e7eb; color: #374151; } .s-empty { color: #6b7280; }
  td.snapedge { border-left: 3px solid #374151 !important; }
  kbd { border: 1px solid #9ca3af; border-radius: 3px; padding: 0 4px; background: #f3f4f6; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1 id="title">@@TITLE@@</h1>
  @@TOUR@@
  <div class="meta" id="meta"></div>
</header>
<div class="controls" role="toolbar" aria-label="Replay controls">
  <button id="first" title="First step (Home)" aria-label="First step">|◀◀</button>
  <button id="back" title="Step back (←)" aria-label="Step back">◀</button>
  <button id="play" title="Play / pause (space)" aria-label="Play">▶ Play</button>
  <button id="fwd" title="Step forward (→)" aria-label="Step forward">▶|</button>
  <button id="last" title="Last step (End)" aria-label="Last step">▶▶|</button>
  <button id="toviol" title="Go to the violation" hidden>⚠ Violation</button>
  <label for="speed" style="margin-left:12px">Speed</label>
  <input id="speed" type="range" min="-3" max="7" step="0.25" value="1" aria-label="Speed (log scale)">
  <output id="speedout"></output>
  <span id="where" aria-live="polite"></span>
  <span class="note" style="margin-left:auto"><kbd>space</kbd> play/pause · <kbd>←</kbd> <kbd>→</kbd> step · <kbd>Home</kbd> <kbd>End</kbd></span>
</div>
<div class="timeline">
  <input id="timeline" type="range" min="0" max="0" value="0" aria-label="Timeline: step">
  <div id="marks" aria-hidden="true"></div>
</div>
<main>
  <section>
    <svg id="net" viewBox="0 0 640 440" role="img" aria-label="Nodes and the messages in flight between them"></svg>
    <div class="caption" id="caption" aria-live="polite"></div>
    <div id="violation" role="alert"></div>
    <h2>Each node's log at this step</h2>
    <div id="grid"></div>
    <p class="note">Columns are log slots. <span class="cell s-applied">✓</span> chosen and applied · <span class="cell s-chosen">C</span> known chosen, not yet applied ·
      <span class="cell s-accepted">b2.1</span> accepted in that ballot, not known chosen · <span class="cell s-snapshot">S</span> compacted into the node's snapshot (a thick line marks its boundary) · empty: nothing accepted.</p>
  </section>
  <section>
    <h2>Nodes after this step</h2>
    <div class="nodes" id="nodes"></div>
    <h2 id="evhead">What happens in this step</h2>
    <ul class="events" id="events"></ul>
    <p class="note" id="sampling"></p>
  </section>
</main>
<script type="application/json" id="replay-data">@@REPLAY_JSON@@</script>
<script>
"use strict";
const R = JSON.parse(document.getElementById("replay-data").textContent);
const steps = R.steps, N = steps.length;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

// Each node's state after every step: the latest recorded at or before it.
const stateAt = [];
const ids = new Set(R.initialNodes);
{
  let cur = {};
  for (let k = 0; k < N; k++) {
    if (steps[k].nodes.length) {
      cur = Object.assign({}, cur);
      for (const n of steps[k].nodes) { cur[n.id] = n; ids.add(n.id); }
    }
    stateAt.push(cur);
  }
}
const nodeIds = [...ids].sort((a, b) => a - b);
// The links cut after every step (each [from, to]; recorded when they change).
const cutsAt = [];
{
  let cur = [];
  for (let k = 0; k < N; k++) { if (steps[k].cuts) cur = steps[k].cuts; cutsAt.push(cur); }
}

// Every recorded message: the step it was sent, delivered (each copy) or dropped.
const msgs = new Map();
for (let k = 0; k < N; k++) {
  for (const m of steps[k].messages) {
    let e = msgs.get(m.id);
    if (!e) { e = { id: m.id, type: m.type, from: m.from, to: m.to, ballot: m.ballot, slots: m.slots || [], text: m.text || m.type, sent: null, delivered: [], dropped: null, copies: 1 }; msgs.set(m.id, e); }
    if (m.fate === "sent") { e.sent = k; e.copies = m.copies || 1; }
    else if (m.fate === "dropped") { e.dropped = k; e.sent = k; }
    else e.delivered.push(k);
  }
}
const msgList = [...msgs.values()].filter((e) => e.sent !== null);
for (const e of msgList) e.end = e.dropped !== null ? e.dropped : (e.delivered.length ? Math.max(...e.delivered) : e.sent);
const V = R.violation;
const violationMsgs = new Set(V ? V.messageIDs : []);

// ---- Header and timeline marks ----
const ms = (us) => (us / 1000).toFixed(3) + " ms";
$("meta").textContent = `${R.nodeCount} nodes at the start, read mode ${R.readMode}, tick ${R.tickMillis} ms, election timeout ${R.electionTimeoutMillis} ms, lease ${R.leaseMillis} ms · ${N} steps` +
  (R.breaks.length ? ` · deliberately broken: ${R.breaks.join(", ")}` : "") +
  (R.violations.length ? ` · ${R.violations.length} violation(s) found` : " · no violation found");
$("sampling").textContent = `Heartbeats, heartbeat acknowledgements and commit notices are frequent: 1 in ${R.heartbeatSampling} is shown (by message number; ${R.heartbeatsOmitted} omitted). ` +
  "A step is one event of the simulated world that did something visible; ticks that changed nothing are left out." +
  (R.stepsOmitted ? ` ${R.stepsOmitted} later steps are not shown (the record stops ${R.violation ? "200 steps after the violation" : "after " + R.stepLimit + " steps"}).` : "");
{
  const marks = $("marks"); let html = ""; let placed = 0;
  for (let k = 0; k < N && placed < 400; k++) {
    const kinds = new Set(steps[k].notes.map((n) => n.kind));
    let cls = kinds.has("violation") ? "m-viol" : kinds.has("fault") ? "m-fault" : kinds.has("membership") ? "m-member" : kinds.has("role") ? "m-role" : null;
    if (cls) { html += `<span class="${cls}" style="left:${(100 * k / Math.max(1, N - 1)).toFixed(2)}%" title="step ${k}"></span>`; placed++; }
  }
  if (V) html += `<span class="m-viol" style="left:${(100 * V.step / Math.max(1, N - 1)).toFixed(2)}%"></span>`;
  marks.innerHTML = html;
}
$("timeline").max = String(Math.max(0, N - 1));

// ---- Drawing the network ----
const W = 640, H = 440, CX = 320, CY = 200, RAD = 150;
function pos(id) {
  const i = nodeIds.indexOf(id), n = nodeIds.length;
  const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
  return [CX + RAD * Math.cos(a), CY + RAD * Math.sin(a)];
}
const colors = { leader: ["#ffe9b3", "#8a5a00"], candidate: ["#ffd7bf", "#8f3b00"], follower: ["#dbe8fb", "#1d4f91"] };
const msgColor = { Prepare: "#b45309", Promise: "#047857", Accept: "#1d4ed8", Accepted: "#6d28d9", Commit: "#0f766e", Heartbeat: "#6b7280", HeartbeatAck: "#6b7280", Reject: "#b91c1c" };
function drawNet(k) {
  const st = stateAt[k] || {};
  let s = `<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#374151"/></marker></defs>`;
  // Links cut by a partition (or a stall's isolation): a red dashed segment per direction,
  // with a cross; a link cut one way only has a single segment, on its sender's side.
  const cuts = cutsAt[k] || [];
  const cutSet = new Set(cuts.map((c) => c[0] + ">" + c[1]));
  for (const [a, b] of cuts) {
    let [x1, y1] = pos(a), [x2, y2] = pos(b);
    const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
    const both = cutSet.has(b + ">" + a);
    const off = both ? (a < b ? 3 : -3) : (a < b ? 12 : -12), ox = -dy / len * off, oy = dx / len * off;
    x1 += ox + dx / len * 40; y1 += oy + dy / len * 40; x2 += ox - dx / len * 40; y2 += oy - dy / len * 40;
    const cx = x1 + (x2 - x1) * (both ? 0.5 : 0.35), cy = y1 + (y2 - y1) * (both ? 0.5 : 0.35);
    s += `<g data-cut="${a}>${b}" class="cut"><line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="#d4002a" stroke-width="2" stroke-dasharray="3 5" opacity="0.7"/>`;
    if (!both || a < b) s += `<text x="${cx.toFixed(1)}" y="${(cy + 5).toFixed(1)}" font-size="15" text-anchor="middle" fill="#b0001f" font-weight="700" paint-order="stroke" stroke="#fff" stroke-width="3">✂</text>`;
    if (!both) s += `<text x="${(x1 + (x2 - x1) * 0.55).toFixed(1)}" y="${(y1 + (y2 - y1) * 0.55 + (a < b ? -6 : 14)).toFixed(1)}" font-size="11" text-anchor="middle" fill="#b0001f" paint-order="stroke" stroke="#fff" stroke-width="3">one-way: n${a}→n${b} lost</text>`;
    s += `</g>`;
  }
  // Messages in flight after step k, and those delivered or lost in it.
  const shown = [];
  for (const e of msgList) {
    if (e.sent > k || e.end < k) continue;
    if (e.end === e.sent && e.sent !== k) continue;
    shown.push(e);
  }
  shown.sort((a, b) => (violationMsgs.has(b.id) - violationMsgs.has(a.id)) || (b.sent - a.sent));
  // Labels of messages on one link are stacked (four at most, then a count).
  const labels = new Map();
  for (const e of shown.slice(0, 60)) {
    if (!pos(e.from) || !pos(e.to)) continue;
    let [x1, y1] = pos(e.from), [x2, y2] = pos(e.to);
    const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
    const off = e.from < e.to ? 7 : -7, ox = -dy / len * off, oy = dx / len * off;
    x1 += ox + dx / len * 38; y1 += oy + dy / len * 38; x2 += ox - dx / len * 38; y2 += oy - dy / len * 38;
    const hot = violationMsgs.has(e.id);
    const col = hot ? "#a1001f" : (msgColor[e.type] || "#374151");
    let p;
    if (e.dropped === k) p = 0.5; else if (e.delivered.includes(k)) p = 1; else if (e.sent === k) p = 0.3;
    else p = Math.min(0.92, Math.max(0.1, (k - e.sent) / Math.max(1, e.end - e.sent)));
    const px = x1 + (x2 - x1) * p, py = y1 + (y2 - y1) * p;
    const now = e.sent === k || e.delivered.includes(k) || e.dropped === k;
    s += `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${col}" stroke-width="${hot ? 3 : now ? 2 : 1.2}" ${now ? "" : 'stroke-dasharray="5 4"'} opacity="${now || hot ? 1 : 0.55}" ${e.delivered.includes(k) ? 'marker-end="url(#arr)"' : ""}/>`;
    if (e.dropped === k) s += `<text x="${px.toFixed(1)}" y="${(py + 6).toFixed(1)}" font-size="20" text-anchor="middle" fill="#b91c1c" font-weight="700">✕</text>`;
    else s += `<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="${now ? 6 : 4.5}" fill="${col}"/>`;
    if (now || hot) {
      const key = e.from + ">" + e.to, l = labels.get(key) || { n: 0, x: px, y: py, col, up: e.from < e.to };
      if (l.n < 4) s += `<text x="${(l.x + 8).toFixed(1)}" y="${(e.from < e.to ? l.y - 8 - 14 * l.n : l.y + 20 + 14 * l.n).toFixed(1)}" font-size="12" fill="${col}" font-weight="600" paint-order="stroke" stroke="#fff" stroke-width="3">${esc(e.type)}${e.ballot ? " " + esc(e.ballot) : ""}${e.slots.length && ["Accept", "Accepted"].includes(e.type) ? " s" + e.slots[0] : ""}</text>`;
      l.n++; labels.set(key, l);
    }
  }
  for (const l of labels.values()) if (l.n > 4) s += `<text x="${(l.x + 8).toFixed(1)}" y="${(l.up ? l.y - 8 - 14 * 4 : l.y + 20 + 14 * 4).toFixed(1)}" font-size="12" fill="${l.col}" paint-order="stroke" stroke="#fff" stroke-width="3">+${l.n - 4} more</text>`;
  for (const id of nodeIds) {
    const [x, y] = pos(id); const n = st[id];
    const status = n ? n.status : "not started";
    const role = n ? n.role : "";
    let [fill, ink] = colors[role] || ["#e2e2e2", "#333"];
    if (status !== "up") { fill = status === "stalled" ? "#eadcff" : status === "refused" ? "#ffe0e6" : "#e2e2e2"; ink = status === "stalled" ? "#4c1d95" : status === "refused" ? "#a1001f" : "#333"; }
    const word = { up: role, down: "crashed", stalled: "stalled ⏸", removed: "removed", refused: "refused", "not started": "not started" }[status] || status;
    s += `<g data-node="${id}" data-status="${esc(status)}"><circle cx="${x}" cy="${y}" r="36" fill="${fill}" stroke="${ink}" stroke-width="${role === "leader" && status === "up" ? 4 : 2}" ${status === "up" ? "" : 'stroke-dasharray="6 4"'}/>`;
    if (status === "down") s += `<path d="M${x - 22},${y - 22} L${x + 22},${y + 22} M${x + 22},${y - 22} L${x - 22},${y + 22}" stroke="#6b7280" stroke-width="2" opacity="0.45"/>`;
    s += `<text x="${x}" y="${y - 4}" text-anchor="middle" font-size="17" font-weight="700" fill="${ink}">n${id}</text>`;
    s += `<text x="${x}" y="${y + 13}" text-anchor="middle" font-size="11.5" fill="${ink}">${esc(word)}</text>`;
    // Badges under the node: lease, disk trouble, membership (as the node itself knows it).
    const badges = [];
    if (n && n.lease && status === "up") badges.push(["holds lease", "#125f2a"]);
    if (n && n.disk) badges.push([n.disk === "repairing" ? "disk: repairing" : "disk damaged", "#a1001f"]);
    if (status === "refused") badges.push(["damaged log", "#a1001f"]);
    if (n && n.learners && n.learners.includes(id)) badges.push(["learner", "#1d4f91"]);
    else if (n && status === "up" && n.voters.length && !n.voters.includes(id)) badges.push(["not a voter", "#1d4f91"]);
    badges.forEach(([t, c], i) => { s += `<text x="${x}" y="${y + 50 + 13 * i}" text-anchor="middle" font-size="11.5" fill="${c}" font-weight="600" paint-order="stroke" stroke="#fff" stroke-width="3" class="badge">${esc(t)}</text>`; });
    s += `</g>`;
  }
  s += `<text x="10" y="${H - 10}" font-size="12" fill="#4a505c">dashed: in flight · solid: sent or arriving now · ✕: lost · ✂: cut link${violationMsgs.size ? " · red: led to the violation" : ""}</text>`;
  $("net").innerHTML = s;
}

// ---- Node panels ----
const fields = [["status", "status"], ["role", "role"], ["ballot", "own ballot"], ["promised", "promised"], ["chosenThrough", "chosen through"],
  ["appliedThrough", "applied through"], ["snapshotThrough", "snapshot through"], ["lease", "lease"], ["leaderHint", "leader seen"], ["voters", "voters"], ["learners", "learners"], ["disk", "disk"]];
function show(f, v) {
  if (v === undefined || v === null) return "–";
  if (f === "lease") return v ? "held" : "no";
  if (f === "leaderHint") return "n" + v;
  if (f === "disk") return v;
  if (Array.isArray(v)) return v.length ? v.map((x) => "n" + x).join(" ") : "–";
  return String(v);
}
function drawNodes(k) {
  const st = stateAt[k] || {};
  const changed = new Set(steps[k] ? steps[k].nodes.map((n) => n.id) : []);
  let html = "";
  for (const id of nodeIds) {
    const n = st[id];
    const cls = n ? (n.status === "up" ? n.role : n.status) : "down";
    html += `<section class="node ${cls}${changed.has(id) ? " changed" : ""}" data-node="${id}"><h3>n${id}</h3><dl>`;
    for (const [f, label] of fields) html += `<dt>${label}</dt><dd data-field="${f}">${esc(n ? show(f, n[f]) : (f === "status" ? "not started" : "–"))}</dd>`;
    html += `</dl></section>`;
  }
  $("nodes").innerHTML = html;
}

// ---- The log grid: every node's slots at the step ----
// A slot's state at a node: "snapshot" (compacted), "applied", "chosen", "accepted" (in a
// ballot, not known chosen) or "empty".
function slotState(n, slot) {
  if (slot <= n.snapshotThrough) return ["snapshot", "S"];
  if (slot <= n.appliedThrough) return ["applied", "✓"];
  if (slot <= n.chosenThrough) return ["chosen", "C"];
  const e = (n.log || []).find((x) => x.slot === slot);
  if (e && e.chosen) return ["chosen", "C"];
  if (e && e.ballot) return ["accepted", e.ballot];
  return ["empty", ""];
}
function gridRange(st) {
  let hi = 0;
  for (const id of nodeIds) { const n = st[id]; if (!n) continue; hi = Math.max(hi, n.chosenThrough); for (const e of n.log || []) hi = Math.max(hi, e.slot); }
  return [Math.max(1, hi - 13), Math.max(hi, 1)];
}
function drawGrid(k) {
  const st = stateAt[k] || {};
  const [lo, hi] = gridRange(st);
  let html = `<table class="grid" data-lo="${lo}" data-hi="${hi}"><tr><th>slot</th>`;
  for (let slot = lo; slot <= hi; slot++) html += `<th>${slot}</th>`;
  html += `</tr>`;
  for (const id of nodeIds) {
    const n = st[id];
    html += `<tr class="${n && n.status === "up" ? "" : "dim"}"><th>n${id}</th>`;
    for (let slot = lo; slot <= hi; slot++) {
      const [state, text] = n ? slotState(n, slot) : ["empty", ""];
      const edge = n && n.snapshotThrough > 0 && slot === n.snapshotThrough + 1 ? " snapedge" : "";
      html += `<td data-node="${id}" data-slot="${slot}" data-state="${state}" class="${edge.trim()}"><span class="cell s-${state}">${esc(text)}</span></td>`;
    }
    html += `</tr>`;
  }
  $("grid").innerHTML = html + `</table>`;
}

// ---- Captions: the protocol step in plain words ----
const majority = (n) => Math.floor(n / 2) + 1;
function caption(k) {
  const s = steps[k]; if (!s) return "";
  const notes = s.notes, types = new Set(s.messages.map((m) => m.type));
  const voters = (() => { const st = stateAt[k]; for (const id of nodeIds) if (st[id] && st[id].voters.length) return st[id].voters.length; return R.nodeCount; })();
  const maj = majority(voters);
  if (V && k === V.step) {
    if (V.kind === "agreement" || V.kind === "quorum")
      return `<b>Safety is broken here.</b> Slot ${V.slot} ${V.kind === "agreement" ? "was chosen with two different values" : "was counted as chosen without a majority of its voters accepting it"}. ` +
        `In correct Paxos a value is chosen only when a majority accepted it, and every new leader first asks a majority (Prepare/Promise); any two majorities share a node, which reports the accepted value, so no second value can be chosen. ` +
        (R.breaks.includes("non-intersecting-quorums") ? "This run uses phase-1 and phase-2 quorums that need not intersect, so a new leader can miss the acceptor that knew." : "This run breaks a rule on purpose (" + esc(R.breaks.join(", ")) + ").");
    if (V.kind === "linearizability")
      return `<b>A stale read is exposed here.</b> A client read a value that a later-completed write had already replaced. ` +
        `A lease lets a leader answer reads alone only while no other leader can exist: followers promise not to elect anyone for an election timeout (${R.electionTimeoutMillis} ms) after a heartbeat, and the lease (${R.leaseMillis} ms) is shorter by more than clocks may drift. ` +
        (R.breaks.includes("tick-lease") ? "This run measures the lease in ticks, which stop while the process is stalled: the stalled leader woke believing its lease still held, while the others had elected a new leader and written." : "This run breaks a rule on purpose (" + esc(R.breaks.join(", ")) + ").");
    return `<b>The simulator's checks found a violation here:</b> ${esc(V.text)}`;
  }
  const has = (kind, re) => notes.some((n) => n.kind === kind && (!re || re.test(n.text)));
  const text = (kind, re) => { const n = notes.find((n) => n.kind === kind && (!re || re.test(n.text))); return n ? esc(n.text) : ""; };
  if (has("fault", /CRASH|power loss/)) return `<b>${text("fault", /CRASH|power loss/)}.</b> A crash loses what the node had not synced to disk. Paxos stays safe because a node writes its promises and acceptances to disk <i>before</i> it sends them: a promise, once given, survives the crash.`;
  if (has("fault", /partition|cuts|isolat|one-way|NEMESIS (splits|separates)/i)) {
    // The sides: nodes that still hear each other both ways.
    const cut = new Set((cutsAt[k] || []).map((c) => c[0] + ">" + c[1]));
    const st = stateAt[k] || {};
    const voterIds = (() => { for (const id of nodeIds) if (st[id] && st[id].status === "up" && st[id].voters.length) return st[id].voters; return R.initialNodes; })();
    const seen = new Set(), sides = [];
    for (const id of voterIds) {
      if (seen.has(id)) continue;
      const side = [id]; seen.add(id);
      for (let i = 0; i < side.length; i++) for (const o of voterIds) if (!seen.has(o) && !cut.has(side[i] + ">" + o) && !cut.has(o + ">" + side[i])) { seen.add(o); side.push(o); }
      sides.push(side.sort((a, b) => a - b));
    }
    const big = sides.find((x) => x.length >= maj);
    const where = sides.length > 1 ? ` The sides: ${sides.map((x) => "{" + x.map((i) => "n" + i).join(",") + "}").join(" ")}. ` +
      (big ? `Only {${big.map((i) => "n" + i).join(",")}} holds a majority (${maj} of ${voters}).` : `<b>No side holds a majority</b> (${maj} of ${voters}): no leader can be elected and no value chosen anywhere until the network heals.`) : "";
    return `<b>${text("fault")}.</b> Messages across the cut are lost (red ✂ in the drawing). Only a side with a majority of the voters can elect a leader and choose values: every quorum is a majority, and a minority holds none.` + where;
  }
  if (has("fault", /stalls/)) return `<b>${text("fault", /stalls/)}.</b> The process stops (a pause, a stuck loop) while its clock and the other nodes go on. A stalled leader must not serve reads from a lease that has expired meanwhile: the lease is measured on a clock that keeps running.`;
  if (has("fault", /heals/)) return `<b>The network heals.</b> Nodes hear each other again; a node that fell behind catches up from the others.`;
  if (has("fault")) return `<b>${text("fault")}</b>`;
  if (has("membership", /MEMBERSHIP/)) return `<b>${text("membership", /MEMBERSHIP/)}.</b> A membership change adds or removes one node (or turns a learner, which copies the log without voting, into a voter). It is itself a value chosen in a slot, by the majority of the old voters; it governs slots only from a later slot on, and one change is applied at a time, so the old and the new majorities always share a node while it takes effect.`;
  if (has("membership")) return `<b>${text("membership")}.</b> The operator changes who is in the cluster, one step at a time: a new node first joins as a learner and catches up (from a snapshot), and only then becomes a voter; a removed node stops once the cluster confirms its removal.`;
  const candidates = nodeIds.filter((id) => { const n = (stateAt[k] || {})[id]; return n && n.status === "up" && n.role === "candidate"; });
  const split = candidates.length >= 2 ? ` <b>Split vote:</b> ${candidates.map((i) => "n" + i).join(" and ")} campaign at the same time. A voter promises only the higher ballot, so the votes may split and neither gets a majority; each then waits a random time and tries again with a still higher ballot, and the randomness makes one of them usually first next time.` : "";
  if (has("role", /becomes candidate/)) return `<b>${text("role", /becomes candidate/)}.</b> It heard no leader for an election timeout. It sends Prepare with a higher ballot to every voter and needs promises from a majority (${maj} of ${voters}). Why a majority: any two majorities of ${voters} nodes have ${maj} + ${maj} = ${2 * maj} > ${voters} members, so they share at least one node; whatever an earlier leader got chosen (by a majority), some promiser knows it and will report it.` + split;
  if (has("role", /becomes leader/)) return `<b>${text("role", /becomes leader/)}.</b> A majority promised. For every slot a promise reported, the new leader re-proposes the value accepted in the <i>highest</i> ballot it heard: that value may already be chosen, and proposing anything else could choose a second value for the slot. Only then does it propose new commands.`;
  if (has("role", /becomes follower/)) return `<b>${text("role", /becomes follower/)}.</b> It saw a higher ballot (or lost its majority) and steps down: it follows whoever leads the higher ballot.`;
  if (has("chosen")) return `<b>${text("chosen")}.</b> <i>Chosen</i> means a majority of voters accepted this value in the same ballot. It can never change: any later leader's Prepare reaches a majority, which shares a node with this one, and that node reports the value. Nodes apply chosen slots strictly in slot order.`;
  if (types.has("Prepare")) return `<b>Prepare.</b> A candidate asks each voter: promise to ignore ballots lower than mine, and tell me what you have accepted from this slot on. It needs a majority (${maj} of ${voters}) of such promises: a majority shares a node with every majority that chose a value before.` + split;
  if (types.has("Promise")) {
    const carrying = s.messages.find((m) => m.type === "Promise" && m.fate !== "delivered" && m.slots && m.slots.length);
    const detail = carrying ? ` Here n${carrying.from} reports slot${carrying.slots.length > 1 ? "s" : ""} ${carrying.slots.slice(0, 4).join(", ")}${carrying.accepted ? " (accepted in " + carrying.accepted.slice(0, 4).map((b) => b || "chosen").join(", ") + ")" : ""}: the candidate must re-propose that value, not a new one, because it may already be chosen.` : "";
    return `<b>Promise.</b> A voter promises the candidate's ballot (written to disk first) and reports the values it accepted, each with its ballot, so the candidate can re-propose the highest-ballot value of each slot.` + detail;
  }
  if (types.has("Reject")) return `<b>Reject.</b> The voter has already promised a higher ballot: the sender's ballot is stale and it must not lead with it.` + (split || (candidates.length ? " A candidate that is rejected retries later with a ballot above the highest it has seen." : ""));
  if (types.has("Accept")) return `<b>Accept.</b> The leader asks every voter to accept a value for a slot in its ballot. A voter accepts unless it promised a higher ballot since.`;
  if (types.has("Accepted")) return `<b>Accepted.</b> A voter accepted the value (on disk first) and tells the leader. When a majority (${maj} of ${voters}) accepted in one ballot, the value is chosen.`;
  if (types.has("Commit")) return `<b>Commit notice.</b> The leader tells the others how far the log is chosen, so they apply it too.`;
  if (types.has("Heartbeat") || types.has("HeartbeatAck") || /: (Heartbeat|HeartbeatAck|Commit) arrives$/.test(s.event)) {
    if (/Commit arrives$/.test(s.event)) return `<b>Commit notice.</b> The leader tells the others how far the log is chosen, so they apply it too.` + (s.nodes.length ? " " + s.nodes.map((n) => `n${n.id} now knows slots through ${n.chosenThrough} are chosen and applied through ${n.appliedThrough}.`).join(" ") : "");
    return `<b>Heartbeat.</b> It keeps followers from starting an election and renews the leader's lease: once a majority acknowledged a heartbeat, they will elect no one else for an election timeout (${R.electionTimeoutMillis} ms), so the leader may answer reads alone for ${R.leaseMillis} ms from when it sent it. The lease is shorter than the election timeout, by more than clocks may drift, so it ends before another leader can exist.`;
  }
  if (types.has("PreVote") || types.has("PreVoteReply")) return `<b>Pre-vote.</b> Before raising its ballot, a node asks whether the others would vote: a node cut off for a while cannot disturb a working leader by coming back with a higher ballot.`;
  if (types.has("CatchUpRequest") || types.has("CatchUpReply") || types.has("SnapshotChunk")) return `<b>Catching up.</b> A node that missed chosen slots fetches them (or a snapshot of the state, in chunks checked against a checksum) from another node.`;
  if (types.has("Forward")) return `<b>Forward.</b> A follower passes a client's command to the leader, which alone proposes values.`;
  if (has("client", /invokes/)) return `<b>${text("client", /invokes/)}.</b> The client sends its request to a node; writes go through the log, reads are answered by the leader (from its lease or after confirming it still leads).`;
  if (has("client")) return `<b>${text("client")}.</b>`;
  if (has("role")) return `<b>${text("role")}.</b>`;
  if (s.nodes.length) return `<b>${esc(s.event)}.</b> Node state changed: ` + s.nodes.map((n) => `n${n.id} chosen through ${n.chosenThrough}, applied through ${n.appliedThrough}${n.lease ? ", holds lease" : ""}`).join("; ") + ".";
  return `<b>${esc(s.event)}.</b>`;
}

// ---- Events of the step, and the violation ----
function drawEvents(k) {
  const s = steps[k]; if (!s) { $("events").innerHTML = ""; return; }
  let html = `<li><b>${esc(s.event)}</b></li>`;
  for (const n of s.notes) html += `<li class="k-${n.kind}">${esc(n.text)}</li>`;
  for (const m of s.messages) {
    const verb = m.fate === "sent" ? (m.copies > 1 ? "sent (duplicated)" : "sent") : m.fate === "dropped" ? "lost" : "delivered";
    const e = msgs.get(m.id);
    html += `<li class="${m.fate === "dropped" ? "k-dropped" : ""}">n${m.from} → n${m.to} ${verb}${m.damaged ? " (damaged)" : ""}: ${esc(m.text || (e ? e.text : m.type))}</li>`;
  }
  $("events").innerHTML = html;
}
function drawViolation(k) {
  const box = $("violation");
  if (!V) return;
  box.classList.add("show");
  box.classList.toggle("here", k === V.step);
  let html = `<b>${k === V.step ? "Here: " : ""}Violation at step ${V.step}</b> (${esc(V.kind)}) <a data-go="${V.step}">go there</a><br>${esc(V.text.split("\n")[0])}`;
  if (V.slot !== null && V.slot !== undefined) {
    html += `<br>Slot ${V.slot}: chosen as ${V.chosenValues.map(esc).join(" and as ")}${V.chosenSteps.length ? " (at step " + V.chosenSteps.join(", ") + ")" : ""}.`;
    if (V.acceptances.length) html += `<table><tr><th>ballot</th><th>value</th><th>accepted by</th></tr>` + V.acceptances.map((a) => `<tr><td>${esc(a.ballot)}</td><td>${esc(a.value)}</td><td>${a.nodes.map((x) => "n" + x).join(", ")}</td></tr>`).join("") + `</table>`;
  }
  if (V.operations.length) {
    html += `<br>Operations involved:<table><tr><th>client</th><th>operation</th><th>outcome</th><th>invoked</th><th>completed</th><th>step</th></tr>` +
      V.operations.map((o) => `<tr><td>${o.client}</td><td>${esc(o.text)}</td><td>${esc(o.outcome)}</td><td>${ms(o.invokedAt)}</td><td>${o.completedAt !== null && o.completedAt !== undefined ? ms(o.completedAt) : "–"}</td><td>${o.step !== null && o.step !== undefined ? `<a data-go="${o.step}">${o.step}</a>` : "–"}</td></tr>`).join("") + `</table>`;
  }
  if (V.messageIDs.length) {
    html += `<br>Messages that led there (red in the drawing): ` + V.messageIDs.map((id) => { const e = msgs.get(id); return e ? `<a data-go="${e.sent}">${esc(e.type)} n${e.from}→n${e.to}${e.slots.length ? " s" + e.slots.join(",") : ""} @${e.sent}</a>` : ""; }).join(", ");
  }
  box.innerHTML = html;
}
$("violation").addEventListener("click", (ev) => { const t = ev.target.closest("[data-go]"); if (t) { pause(); go(+t.dataset.go); } });

// ---- Playback ----
let cur = 0, timer = null;
function render() {
  $("timeline").value = String(cur);
  const s = steps[cur];
  $("where").textContent = N ? `step ${cur} / ${N - 1} · t = ${ms(s.time)}` : "no steps";
  document.body.dataset.step = String(cur);
  drawNet(cur); drawNodes(cur); drawGrid(cur); drawEvents(cur);
  $("caption").innerHTML = caption(cur);
  drawViolation(cur);
  const want = "#step=" + cur;
  if (location.hash !== want) { try { history.replaceState(null, "", want); } catch (e) { /* file: URLs in some browsers */ } }
}
function go(k) { cur = Math.max(0, Math.min(N - 1, k | 0)); render(); }
function forward() { if (cur < N - 1) go(cur + 1); else pause(); }
function back() { if (cur > 0) go(cur - 1); }
function speed() { return Math.pow(2, +$("speed").value); }
function tick() {
  if (V && cur === V.step) { pause(); return; }
  forward();
  if (V && cur === V.step) { pause(); return; }
  if (timer !== null) timer = setTimeout(tick, 1000 / speed());
}
function play() { if (timer !== null) return; if (cur >= N - 1) go(0); timer = setTimeout(tick, 1000 / speed()); $("play").textContent = "⏸ Pause"; $("play").setAttribute("aria-label", "Pause"); }
function pause() { if (timer !== null) clearTimeout(timer); timer = null; $("play").textContent = "▶ Play"; $("play").setAttribute("aria-label", "Play"); }
function toggle() { if (timer === null) play(); else pause(); }
function showSpeed() { const v = speed(); $("speedout").textContent = (v < 1 ? v.toFixed(2) : v.toFixed(v < 10 ? 1 : 0)) + " steps/s"; }
const click = (id, f) => $(id).addEventListener("click", (ev) => { f(); ev.currentTarget.blur(); });
click("first", () => { pause(); go(0); });
click("back", () => { pause(); back(); });
click("play", toggle);
click("fwd", () => { pause(); forward(); });
click("last", () => { pause(); go(N - 1); });
if (V) { $("toviol").hidden = false; click("toviol", () => { pause(); go(V.step); }); }
$("timeline").addEventListener("input", () => { pause(); go(+$("timeline").value); });
$("speed").addEventListener("input", showSpeed);
document.addEventListener("keydown", (ev) => {
  if (ev.target && ev.target.tagName === "INPUT" && ev.key !== " ") return;
  if (ev.key === " ") { ev.preventDefault(); toggle(); }
  else if (ev.key === "ArrowRight") { ev.preventDefault(); pause(); forward(); }
  else if (ev.key === "ArrowLeft") { ev.preventDefault(); pause(); back(); }
  else if (ev.key === "Home") { ev.preventDefault(); pause(); go(0); }
  else if (ev.key === "End") { ev.preventDefault(); pause(); go(N - 1); }
});
function fromHash() { const m = /step=(\d+)/.exec(location.hash); return m ? +m[1] : null; }
window.addEventListener("hashchange", () => { const k = fromHash(); if (k !== null && k !== cur) { pause(); go(k); } });
// The replay's API for tests and for the console.
window.replay = { go, forward, back, play, pause, get step() { return cur; }, steps: N, stateAt: (k) => stateAt[k] };
showSpeed();
go(fromHash() ?? 0);
</script>
</body>
</html>
"""#
}
