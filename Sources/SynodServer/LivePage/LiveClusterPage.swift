/// The live cluster page (`GET /ui` on every member, and on `synod cluster`'s server): one
/// self-contained HTML document, its CSS and script inline, nothing fetched but same-origin
/// `/ui/...`. It follows `/ui/events` (polling `/ui/state` if the feed keeps failing) and
/// draws the members, the recent log slots, the message sequence and the client numbers.
/// The element ids and data attributes it renders are a contract with the browser test and
/// the supervisor (docs/ARCHITECTURE.md, "The live cluster page").
public enum LiveClusterPage {
    public static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Synod — live cluster</title>
<style>
  :root { --fg: #1b1f24; --muted: #4a5360; --bg: #ffffff; --panel: #f4f6f8; --line: #c9d1da;
          --leader: #0b5d1e; --leader-bg: #e3f4e8; --follower: #1d4f91; --follower-bg: #e5eefa;
          --candidate: #7a4b00; --candidate-bg: #fdf1dc; --learner: #5b3f8a; --learner-bg: #efe9f8;
          --down: #8b1c1c; --down-bg: #fbe7e7; --focus: #1a56db;
          --accepted: #fff4d6; --chosen: #d9ebff; --applied: #dcf2e1; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: baseline; padding: 0.8em 1.2em; border-bottom: 1px solid var(--line); background: var(--panel); }
  header h1 { font-size: 1.25em; margin: 0; }
  main { padding: 0.8em 1.2em 2em; display: grid; gap: 1.2em; }
  h2 { font-size: 1.05em; margin: 0 0 0.4em; }
  section { min-width: 0; }
  button { font: inherit; padding: 0.25em 0.7em; border: 1px solid #55606e; border-radius: 4px; background: #ffffff; color: var(--fg); cursor: pointer; }
  button:hover { background: #eef2f6; }
  :focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
  input { font: inherit; padding: 0.2em 0.4em; border: 1px solid #55606e; border-radius: 4px; color: var(--fg); background: #fff; }
  .badge { display: inline-block; padding: 0 0.5em; border-radius: 3px; font-weight: 600; }
  #feed-status.live { color: var(--leader); }
  #feed-status.reconnecting { color: var(--down); }
  #members { display: flex; flex-wrap: wrap; gap: 0.8em; }
  .member { border: 2px solid var(--line); border-radius: 6px; padding: 0.6em 0.8em; min-width: 15em; background: #fff; }
  .member h3 { margin: 0 0 0.3em; font-size: 1.05em; display: flex; gap: 0.5em; align-items: baseline; }
  .member dl { display: grid; grid-template-columns: auto auto; gap: 0.05em 0.8em; margin: 0; }
  .member dt { color: var(--muted); }
  .member dd { margin: 0; font-variant-numeric: tabular-nums; }
  .member .error { color: var(--down); max-width: 22em; }
  .member[data-role="leader"] { border-color: var(--leader); }
  .member[data-role="down"], .member[data-role="paused"] { border-style: dashed; }
  .role-leader { color: var(--leader); background: var(--leader-bg); }
  .role-follower { color: var(--follower); background: var(--follower-bg); }
  .role-candidate { color: var(--candidate); background: var(--candidate-bg); }
  .role-learner { color: var(--learner); background: var(--learner-bg); }
  .role-down, .role-paused { color: var(--down); background: var(--down-bg); }
  .isolated-flag { color: var(--down); font-weight: 600; }
  .grid-wrap { overflow-x: auto; }
  table.slots { border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }
  table.slots th, table.slots td { border: 1px solid var(--line); padding: 0.1em 0.3em; text-align: center; min-width: 2.6em; }
  table.slots th[scope="row"] { text-align: left; }
  .slot[data-state="accepted"] { background: var(--accepted); }
  .slot[data-state="chosen"] { background: var(--chosen); }
  .slot[data-state="applied"] { background: var(--applied); }
  td.snapshotted { color: var(--muted); background: repeating-linear-gradient(45deg, #f4f6f8, #f4f6f8 4px, #e8ecf0 4px, #e8ecf0 8px); }
  td.boundary { border-left: 3px solid #1b1f24; }
  .legend span { display: inline-block; padding: 0 0.5em; margin-right: 0.4em; border: 1px solid var(--line); }
  svg#messages { width: 100%; height: 460px; border: 1px solid var(--line); background: #fff; }
  svg#messages text { font: 11px system-ui, sans-serif; fill: var(--fg); }
  svg#messages .msg text { paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }
  svg#messages .lifeline { stroke: #8593a3; stroke-width: 1; }
  svg#messages .who { font-weight: 700; font-size: 13px; }
  .msg line { stroke-width: 1.4; }
  .msg.t-Prepare line, .msg.t-Promise line { stroke: #7a4b00; }
  .msg.t-Accept line, .msg.t-Accepted line { stroke: #1d4f91; }
  .msg.t-Commit line { stroke: #0b5d1e; }
  .msg.t-Heartbeat line, .msg.t-HeartbeatAck line { stroke: #6b7480; stroke-dasharray: 3 3; }
  .msg.t-Reject line { stroke: #8b1c1c; }
  .msg line { stroke: #4a5360; }
  .stats { display: flex; gap: 2em; flex-wrap: wrap; font-variant-numeric: tabular-nums; }
  .stats b { font-size: 1.3em; }
  #alarms.none { color: var(--muted); }
  #alarms li { color: var(--down); font-weight: 600; }
  #alarms.none li { color: var(--muted); font-weight: 400; }
  #help[hidden] { display: none; }
  #help { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 0.6em 1em; }
  #help dt { font-weight: 700; }
  #help dd { margin: 0 0 0.5em 0; }
  #controls .row { display: flex; gap: 0.4em; align-items: center; flex-wrap: wrap; margin: 0.2em 0; }
  #controls .row .name { min-width: 3em; font-weight: 700; }
  #control-result { font-family: ui-monospace, monospace; white-space: pre-wrap; }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>Synod — live cluster</h1>
  <span>leader: <b id="leader">none</b></span>
  <span>feed: <b id="feed-status" class="reconnecting" role="status">reconnecting</b></span>
  <span class="muted" id="served-by"></span>
  <button type="button" id="help-button" aria-expanded="false" aria-controls="help">What am I looking at?</button>
</header>
<main>
  <section id="help" hidden aria-label="Help">
    <h2>Paxos in plain words</h2>
    <dl>
      <dt>Slot</dt><dd>One position in the replicated log. Each slot ends up holding exactly one value: a batch of client writes, a no-op or a membership change.</dd>
      <dt>Ballot</dt><dd>A numbered attempt to lead, written round.member (for example 3.n1). A higher ballot wins; a member becomes leader by getting promises for its ballot from a majority.</dd>
      <dt>Promise</dt><dd>An acceptor's word that it will accept nothing from a ballot lower than the one it promised. The card's "promised" is the highest ballot that member promised.</dd>
      <dt>Accepted</dt><dd>An acceptor voted for a value in a slot, in some ballot. Not final yet.</dd>
      <dt>Chosen</dt><dd>A majority accepted the same value in the same ballot: the slot's value can never change. "Chosen through 17" means every slot up to 17 is chosen.</dd>
      <dt>Applied</dt><dd>The member executed the chosen value on its key-value store.</dd>
      <dt>Snapshot</dt><dd>Slots up to the snapshot slot are compacted into a copy of the store; the grid marks them with stripes.</dd>
      <dt>Lease</dt><dd>While a leader holds a lease (its heartbeats were acknowledged recently by a quorum) it answers reads by itself, without asking the others.</dd>
      <dt>Messages</dt><dd>Prepare / Promise elect a leader (phase 1); Accept / Accepted choose a value (phase 2); Commit tells the others it is chosen; Heartbeats keep followers from starting an election (only one in N is drawn).</dd>
      <dt>Isolated / down</dt><dd>Isolated: cut off from the other members on purpose (messages dropped). Down: its state could not be fetched.</dd>
    </dl>
  </section>

  <section aria-labelledby="h-members">
    <h2 id="h-members">Members</h2>
    <div id="members"></div>
  </section>

  <section id="controls-section" aria-labelledby="h-controls" hidden>
    <h2 id="h-controls">Controls</h2>
    <div id="controls"></div>
    <p>Result: <output id="control-result" aria-live="polite"></output></p>
  </section>

  <section id="tour-section" aria-labelledby="h-tour" hidden>
    <h2 id="h-tour">Guided tour</h2>
    <ol id="tour"></ol>
  </section>

  <section aria-labelledby="h-clients">
    <h2 id="h-clients">Clients</h2>
    <div class="stats">
      <span>writes: <b id="throughput">0</b> /s</span>
      <span>reads: <b id="reads">0</b> /s</span>
      <span>latency p50: <b id="p50">–</b></span>
      <span>p99: <b id="p99">–</b></span>
    </div>
    <p class="muted">Summed over the reachable members, from each member's own counters over the last seconds.</p>
  </section>

  <section aria-labelledby="h-alarms">
    <h2 id="h-alarms">Alarms</h2>
    <ul id="alarms" class="none"><li>none</li></ul>
  </section>

  <section aria-labelledby="h-slots">
    <h2 id="h-slots">Log slots</h2>
    <p class="legend"><span class="slot" data-state="accepted">A accepted</span><span class="slot" data-state="chosen">C chosen</span><span class="slot" data-state="applied">✓ applied</span>
      the number is the ballot round; a thick left border marks the snapshot boundary.</p>
    <div class="grid-wrap"><table class="slots" id="slots" aria-label="Recent slots by member"></table></div>
  </section>

  <section aria-labelledby="h-messages">
    <h2 id="h-messages">Messages (newest at the top, the last <span id="messages-span">10</span> s)</h2>
    <svg id="messages" role="img" aria-label="Message sequence diagram"></svg>
  </section>
</main>
<script>
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  const WINDOW_MS = 10000;
  let lastState = null;
  let lastDelivery = 0;
  let controlsKey = "";
  let tourKey = "";

  function ballotText(b) { return b ? b.round + "." + b.node : "–"; }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  $("help-button").addEventListener("click", function () {
    const help = $("help");
    help.hidden = !help.hidden;
    this.setAttribute("aria-expanded", String(!help.hidden));
  });

  // ---- member cards (updated in place) ----
  const FIELDS = [["ballot", "ballot"], ["promised", "promised"], ["chosen", "chosen through"], ["applied", "applied through"],
                  ["snapshot", "snapshot slot"], ["revision", "revision"], ["lease", "lease"], ["leaderview", "sees leader"]];
  function card(name) {
    let c = document.querySelector('#members .member[data-name="' + CSS.escape(name) + '"]');
    if (c) return c;
    c = el("article", { "class": "member", "data-name": name, "data-role": "down", "aria-label": "member " + name });
    const h = el("h3");
    h.appendChild(el("span", { "class": "name" }, name));
    h.appendChild(el("span", { "class": "badge role" }, ""));
    h.appendChild(el("span", { "class": "isolated-flag" }, ""));
    c.appendChild(h);
    const dl = el("dl");
    for (const [cls, label] of FIELDS) { dl.appendChild(el("dt", null, label)); dl.appendChild(el("dd", { "class": cls }, "–")); }
    c.appendChild(dl);
    c.appendChild(el("p", { "class": "error" }, ""));
    $("members").appendChild(c);
    return c;
  }
  function renderMembers(state) {
    const names = new Set();
    for (const m of state.members) {
      names.add(m.name);
      const c = card(m.name);
      const role = m.role || "down";
      if (c.dataset.role !== role) c.dataset.role = role;
      const badge = c.querySelector(".role");
      setText(badge, role);
      badge.className = "badge role role-" + role;
      setText(c.querySelector(".isolated-flag"), m.isolated ? "isolated" : "");
      const up = m.reachable !== false;
      setText(c.querySelector(".ballot"), up ? ballotText(m.ballot) : "–");
      setText(c.querySelector(".promised"), up ? ballotText(m.promised) : "–");
      setText(c.querySelector(".chosen"), up ? String(m.chosenThrough) : "–");
      setText(c.querySelector(".applied"), up ? String(m.appliedThrough) : "–");
      setText(c.querySelector(".snapshot"), up ? String(m.snapshotSlot) : "–");
      setText(c.querySelector(".revision"), up ? String(m.revision) : "–");
      setText(c.querySelector(".lease"), !up ? "–" : m.leaseHeld ? "held, " + m.leaseRemainingMs + " ms left" : "not held");
      setText(c.querySelector(".leaderview"), up ? (m.leader || "none") : "–");
      setText(c.querySelector(".error"), up ? "" : (m.error || "unreachable"));
    }
    for (const c of Array.from(document.querySelectorAll("#members .member"))) {
      if (!names.has(c.dataset.name)) c.remove();
    }
  }

  // ---- controls (rebuilt only when members or actions change, so focus stays) ----
  function renderControls(state) {
    const section = $("controls-section");
    const controls = state.controls;
    if (!controls) { section.hidden = true; if (controlsKey) { $("controls").textContent = ""; controlsKey = ""; } return; }
    section.hidden = false;
    const actions = (controls.actions || []).filter((a) => ["kill", "pause", "resume", "restart", "isolate", "heal", "move-leader"].includes(a));
    const key = state.members.map((m) => m.name).join(",") + "|" + actions.join(",") + "|" + (controls.actions || []).includes("put");
    if (key === controlsKey) return;
    controlsKey = key;
    const box = $("controls");
    box.textContent = "";
    for (const m of state.members) {
      const row = el("div", { "class": "row" });
      row.appendChild(el("span", { "class": "name" }, m.name));
      for (const a of actions) {
        const b = el("button", { "type": "button", "data-action": a, "data-member": m.name }, a);
        b.addEventListener("click", () => control(a, { member: m.name }));
        row.appendChild(b);
      }
      box.appendChild(row);
    }
    const form = el("form", { "class": "row", "id": "put-form" });
    const kl = el("label", { "for": "put-key" }, "key"); const ki = el("input", { "id": "put-key", "autocomplete": "off" });
    const vl = el("label", { "for": "put-value" }, "value"); const vi = el("input", { "id": "put-value", "autocomplete": "off" });
    const pb = el("button", { "type": "submit", "id": "put-button" }, "put");
    form.append(kl, ki, vl, vi, pb);
    form.addEventListener("submit", (e) => { e.preventDefault(); control("put", { key: ki.value, value: vi.value }); });
    box.appendChild(form);
  }
  function control(action, body) {
    const token = lastState && lastState.controls ? lastState.controls.token : "";
    setText($("control-result"), action + "…");
    fetch("/ui/control/" + action, {
      method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-Synod-Control-Token": token }
    }).then((r) => r.text()).then((t) => setText($("control-result"), t))
      .catch((e) => setText($("control-result"), "failed: " + e));
  }

  function renderTour(state) {
    const tour = Array.isArray(state.tour) ? state.tour : [];
    const key = JSON.stringify(tour);
    if (key === tourKey) return;
    tourKey = key;
    $("tour-section").hidden = tour.length === 0;
    const list = $("tour");
    list.textContent = "";
    for (const step of tour) {
      const li = el("li");
      const a = el("a", { "href": String(step.href || "#") }, step.title || step.name || "step");
      li.appendChild(a);
      list.appendChild(li);
    }
  }

  function fmt(n) { return n == null ? "–" : (n >= 100 ? n.toFixed(0) : n.toFixed(1)); }
  function renderClients(state) {
    let puts = 0, reads = 0, p50 = null, p99 = null;
    for (const m of state.members) {
      if (!m.clients) continue;
      puts += m.clients.putsPerSecond || 0; reads += m.clients.readsPerSecond || 0;
      if (m.clients.p50Ms != null) p50 = Math.max(p50 || 0, m.clients.p50Ms);
      if (m.clients.p99Ms != null) p99 = Math.max(p99 || 0, m.clients.p99Ms);
    }
    setText($("throughput"), fmt(puts)); setText($("reads"), fmt(reads));
    setText($("p50"), p50 == null ? "–" : fmt(p50) + " ms"); setText($("p99"), p99 == null ? "–" : fmt(p99) + " ms");
  }

  function renderAlarms(state) {
    const items = [];
    for (const m of state.members) for (const a of (m.alarms || [])) items.push(m.name + ": " + a);
    const key = items.join("|");
    const list = $("alarms");
    if (list.dataset.key === key && list.dataset.key !== undefined) return;
    list.dataset.key = key;
    list.textContent = "";
    list.className = items.length ? "" : "none";
    if (!items.length) list.appendChild(el("li", null, "none"));
    for (const i of items) list.appendChild(el("li", null, i));
  }

  // ---- slot grid: rows = members, columns = recent slots across members ----
  const STATE_MARK = { accepted: "A", chosen: "C", applied: "✓" };
  function renderSlots(state) {
    const all = new Set();
    for (const m of state.members) for (const s of (m.slots || [])) all.add(s.slot);
    const columns = Array.from(all).sort((a, b) => a - b).slice(-32);
    const table = $("slots");
    const rows = [];
    const head = el("tr");
    head.appendChild(el("th", { "scope": "col" }, "member / slot"));
    for (const s of columns) head.appendChild(el("th", { "scope": "col" }, String(s)));
    rows.push(head);
    for (const m of state.members) {
      const tr = el("tr");
      tr.appendChild(el("th", { "scope": "row" }, m.name));
      const bySlot = new Map((m.slots || []).map((s) => [s.slot, s]));
      const snap = m.snapshotSlot || 0;
      let boundaryDone = false;
      for (const slot of columns) {
        const s = bySlot.get(slot);
        let td;
        if (s) {
          td = el("td", { "class": "slot", "data-member": m.name, "data-slot": String(slot), "data-state": s.state,
                          "title": m.name + " slot " + slot + ": " + s.state + " " + (s.kind || "") + " in ballot " + ballotText(s.ballot) },
                  STATE_MARK[s.state] + (s.ballot ? s.ballot.round : ""));
        } else if (m.reachable !== false && slot <= snap) {
          td = el("td", { "class": "snapshotted", "title": "in " + m.name + "'s snapshot (through " + snap + ")" }, "");
        } else {
          td = el("td", null, "");
        }
        if (!boundaryDone && m.reachable !== false && snap > 0 && slot > snap) {
          td.classList.add("boundary"); boundaryDone = true;
          td.title = (td.title ? td.title + "; " : "") + "first slot after the snapshot at " + snap;
        }
        tr.appendChild(td);
      }
      rows.push(tr);
    }
    table.replaceChildren(...rows);
  }

  // ---- message sequence diagram ----
  function renderMessages(state) {
    const svg = $("messages");
    const width = svg.clientWidth || 900, height = svg.clientHeight || 460;
    const names = state.members.map((m) => m.name);
    const x = new Map();
    const margin = 70;
    names.forEach((n, i) => x.set(n, names.length === 1 ? width / 2 : margin + i * (width - 2 * margin) / (names.length - 1)));
    const reachable = new Set(state.members.filter((m) => m.reachable !== false).map((m) => m.name));
    const now = state.time;
    const top = 34, bottom = height - 10;
    const arrows = [];
    for (const m of state.members) {
      for (const msg of (m.messages || [])) {
        // Each message is drawn once: from its sender's log, or from its receiver's when the
        // sender's state is not known here.
        let from, to;
        if (msg.dir === "out") { from = m.name; to = msg.peer; }
        else if (!reachable.has(msg.peer)) { from = msg.peer; to = m.name; }
        else continue;
        if (!x.has(from) || !x.has(to)) continue;
        const age = now - msg.t;
        if (age < 0 || age > WINDOW_MS) continue;
        arrows.push({ from, to, msg, age });
      }
    }
    arrows.sort((a, b) => a.age - b.age);
    const shown = arrows.slice(0, 160);
    // Members keep their last 100 messages: under load those span less than 10 s, so the
    // time axis stretches to what is there (at least 2 s).
    const span = Math.min(WINDOW_MS, Math.max(2000, shown.length ? shown[shown.length - 1].age : WINDOW_MS));
    setText($("messages-span"), (span / 1000).toFixed(span < 10000 ? 1 : 0));
    const nodes = [];
    for (const n of names) {
      const line = document.createElementNS(SVGNS, "line");
      line.setAttribute("class", "lifeline"); line.setAttribute("x1", x.get(n)); line.setAttribute("x2", x.get(n));
      line.setAttribute("y1", top - 8); line.setAttribute("y2", bottom);
      const label = document.createElementNS(SVGNS, "text");
      label.setAttribute("class", "who"); label.setAttribute("x", x.get(n)); label.setAttribute("y", 16); label.setAttribute("text-anchor", "middle");
      label.textContent = n;
      nodes.push(line, label);
    }
    const defs = document.createElementNS(SVGNS, "defs");
    defs.innerHTML = '<marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4a5360"/></marker>';
    nodes.unshift(defs);
    const usedLabelRows = [];
    for (const a of shown) {
      const y = top + (a.age / span) * (bottom - top);
      const g = document.createElementNS(SVGNS, "g");
      g.setAttribute("class", "msg t-" + a.msg.type);
      g.setAttribute("data-type", a.msg.type);
      const x1 = x.get(a.from), x2 = x.get(a.to);
      const line = document.createElementNS(SVGNS, "line");
      line.setAttribute("x1", x1); line.setAttribute("y1", y); line.setAttribute("x2", x2); line.setAttribute("y2", y + 6);
      line.setAttribute("marker-end", "url(#arrowhead)");
      g.appendChild(line);
      let slot = a.msg.slot == null ? "" : " s" + a.msg.slot + (a.msg.slotEnd != null && a.msg.slotEnd !== a.msg.slot ? "–" + a.msg.slotEnd : "");
      const text = a.msg.type + (a.msg.ballot ? " " + ballotText(a.msg.ballot) : "") + slot;
      const title = document.createElementNS(SVGNS, "title");
      title.textContent = a.from + " → " + a.to + ": " + text;
      g.appendChild(title);
      // Labels only where they do not overlap an earlier one on the same span.
      // Labels only where they do not overlap one already drawn. Between neighbours a label
      // sits in the middle; over a lifeline in between, nearer the sender, so it is not read
      // as that member's.
      const adjacent = Math.abs(names.indexOf(a.from) - names.indexOf(a.to)) === 1;
      const lx = x1 + (x2 - x1) * (adjacent ? 0.5 : 0.22);
      const halfWidth = text.length * 3.2 + 4;
      if (!usedLabelRows.some((r) => Math.abs(r.y - y) < 12 && Math.abs(r.x - lx) < r.half + halfWidth)) {
        usedLabelRows.push({ x: lx, y, half: halfWidth });
        const t = document.createElementNS(SVGNS, "text");
        t.setAttribute("x", lx); t.setAttribute("y", y - 2); t.setAttribute("text-anchor", "middle");
        t.textContent = text;
        g.appendChild(t);
      }
      nodes.push(g);
    }
    svg.replaceChildren(...nodes);
  }

  function render(state) {
    lastState = state;
    lastDelivery = Date.now();
    const status = $("feed-status");
    setText(status, "live"); status.className = "live";
    setText($("leader"), state.leader || "none");
    setText($("served-by"), "served by " + state.servedBy);
    renderMembers(state);
    renderControls(state);
    renderTour(state);
    renderClients(state);
    renderAlarms(state);
    renderSlots(state);
    renderMessages(state);
  }
  function notLive() {
    const status = $("feed-status");
    setText(status, "reconnecting"); status.className = "reconnecting";
  }
  setInterval(() => { if (Date.now() - lastDelivery > 3000) notLive(); }, 1000);

  // ---- feed: EventSource, falling back to polling after repeated errors ----
  let errors = 0, polling = null, source = null;
  function startPolling() {
    if (polling) return;
    polling = setInterval(() => {
      fetch("/ui/state", { cache: "no-store" }).then((r) => r.ok ? r.json() : Promise.reject(r.status))
        .then(render).catch(notLive);
    }, 1000);
    // Try the event feed again now and then.
    setTimeout(() => { clearInterval(polling); polling = null; errors = 0; connect(); }, 30000);
  }
  function connect() {
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource("/ui/events");
    source.addEventListener("state", (e) => {
      errors = 0;
      try { render(JSON.parse(e.data)); } catch (err) { /* a malformed event: keep the last state */ }
    });
    source.onerror = () => {
      notLive();
      errors += 1;
      // A feed the browser gave up on (an answer that is not an event stream) is CLOSED at
      // once; one that keeps failing is left too: then the page polls /ui/state.
      if (source.readyState === EventSource.CLOSED || errors >= 3) { source.close(); startPolling(); }
    };
  }
  connect();
})();
</script>
</body>
</html>
"""#
}
