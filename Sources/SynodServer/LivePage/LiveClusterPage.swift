/// The live cluster page.
///
/// PLACEHOLDER: the real page comes from the `live-member` branch and replaces this file at
/// the merge. This stand-in only implements the page's DOM contract minimally (ids, classes,
/// data attributes, the controls), so that `synod cluster` and Tests/browser/live-test.sh can
/// run before then.
public enum LiveClusterPage {
    public static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Synod cluster (placeholder page)</title>
<style>body{font:15px sans-serif;color:#111;background:#fff;margin:1em}
.member{border:1px solid #444;margin:.3em 0;padding:.3em}button{color:#111;background:#e8e8e8;border:1px solid #444}
</style></head><body>
<h1>Synod cluster</h1>
<p>Placeholder page (the real one replaces it). Leader: <b id="leader">none</b>. Feed: <span id="feed-status">reconnecting</span>.</p>
<div id="members"></div><div id="slots"></div><svg id="messages" width="1" height="1"></svg>
<div id="throughput"></div><div id="alarms"></div><ul id="tour"></ul>
<div id="controls"></div>
<p><label>key <input id="put-key"></label> <label>value <input id="put-value"></label> <button id="put-button">Put</button></p>
<p id="control-result" role="status"></p>
<script>
let state = null, controlsFor = '';
const $ = id => document.getElementById(id);
function el(tag, attrs, text) { const e = document.createElement(tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; }
function control(action, body) {
  fetch('/ui/control/' + action, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Synod-Control-Token': state.controls.token}, body: JSON.stringify(body)})
    .then(r => r.json()).then(a => { $('control-result').textContent = (a.ok ? 'ok: ' : 'failed: ') + a.message; })
    .catch(e => { $('control-result').textContent = 'failed: ' + e; });
}
function render(s) {
  state = s;
  $('leader').textContent = s.leader || 'none';
  const members = $('members'), slots = $('slots');
  members.replaceChildren(); slots.replaceChildren();
  for (const m of s.members) {
    const card = el('div', {'class': 'member', 'data-name': m.name, 'data-role': m.role});
    card.append(el('b', {}, m.name + ' ' + m.role + ' '), el('span', {'class': 'chosen'}, String(m.chosenThrough ?? '')), ' ',
      el('span', {'class': 'applied'}, String(m.appliedThrough ?? '')), ' ', el('span', {'class': 'ballot'}, m.ballot ? m.ballot.round + '.' + m.ballot.node : '–'),
      ' ', el('span', {}, m.error || ''));
    members.append(card);
    for (const slot of (m.slots || [])) slots.append(el('span', {'class': 'slot', 'data-member': m.name, 'data-slot': slot.slot, 'data-state': slot.state}, ' ' + slot.slot));
  }
  $('tour').replaceChildren(...(Array.isArray(s.tour) ? s.tour.map(t => { const li = el('li', {}); li.append(el('a', {href: t.href}, t.title)); return li; }) : []));
  const names = s.members.map(m => m.name).join(',');
  if (s.controls && controlsFor !== names) {
    controlsFor = names;
    const box = $('controls'); box.replaceChildren();
    for (const m of s.members) for (const a of s.controls.actions) {
      const b = el('button', {'data-action': a, 'data-member': m.name}, a + ' ' + m.name);
      b.addEventListener('click', () => control(a, {member: m.name}));
      box.append(b);
    }
  }
}
$('put-button').addEventListener('click', () => control('put', {key: $('put-key').value, value: $('put-value').value}));
fetch('/ui/state').then(r => r.json()).then(render).catch(() => {});
const events = new EventSource('/ui/events');
events.addEventListener('state', e => { $('feed-status').textContent = 'live'; render(JSON.parse(e.data)); });
events.onerror = () => { $('feed-status').textContent = 'reconnecting'; };
</script></body></html>
"""#
}
