#!/usr/bin/env python3
"""Drives a `synod sim --html` replay page in headless Chromium over the DevTools protocol
(--remote-debugging-pipe; Python standard library only) and checks what it shows against the
replay embedded in the page (the simulator's recorded state, see ReplayExportTests).

usage: replay_test.py CHROMIUM RUN.html BREAK.html OUTDIR [TOURDIR]
  RUN.html    a replay of a correct run
  BREAK.html  a replay of a --break run (it has a violation)
  OUTDIR      where the screenshots go
  TOURDIR     the pages of `synod sim --tour all --html TOURDIR` (index.html and one per scenario)
Exits 0 when every check passes, 1 otherwise.
"""
import json, os, re, sys, tempfile, time

from cdp import Browser, contrast, rgb

# A replay page is ready when its script has read the embedded replay.
REPLAY_READY = "document.readyState === 'complete' && !!window.replay"

FAILURES = []


def check(condition, text):
    print(("ok   " if condition else "FAIL ") + text, flush=True)
    if not condition:
        FAILURES.append(text)


def embedded_replay(path):
    with open(path, encoding="utf-8") as f:
        page = f.read()
    m = re.search(r'<script type="application/json" id="replay-data">(.*?)</script>', page, re.S)
    if not m:
        sys.exit(f"{path}: no embedded replay")
    return json.loads(m.group(1))


def state_at(replay, k):
    """Each node's latest recorded state at or before step k (what the page must show)."""
    latest = {}
    for step in replay["steps"][: k + 1]:
        for node in step["nodes"]:
            latest[node["id"]] = node
    return latest


def shown(field, value):
    """The text the page shows for a field (its documented format)."""
    if value is None:
        return "–"
    if field == "lease":
        return "held" if value else "no"
    if field == "leaderHint":
        return f"n{value}"
    if isinstance(value, list):
        return " ".join(f"n{v}" for v in value) if value else "–"
    return str(value)


FIELDS = ["status", "role", "ballot", "promised", "chosenThrough", "appliedThrough", "snapshotThrough", "lease", "leaderHint", "voters", "learners", "disk"]


def cuts_at(replay, k):
    """The links cut after step k: the latest recorded `cuts` at or before it."""
    cuts = []
    for step in replay["steps"][: k + 1]:
        if step.get("cuts") is not None:
            cuts = step["cuts"]
    return sorted(f"{a}>{b}" for a, b in cuts)


def slot_state(node, slot):
    """A slot's state at a node, by the page's documented rules (see the legend)."""
    if slot <= node.get("snapshotThrough", 0):
        return "snapshot"
    if slot <= node["appliedThrough"]:
        return "applied"
    if slot <= node["chosenThrough"]:
        return "chosen"
    entry = next((e for e in node.get("log", []) if e["slot"] == slot), None)
    if entry and entry.get("chosen"):
        return "chosen"
    if entry and entry.get("ballot"):
        return "accepted"
    return "empty"


def check_cut_links(browser, replay, k, label):
    drawn = sorted(json.loads(browser.eval("JSON.stringify([...document.querySelectorAll('#net [data-cut]')].map(e => e.dataset.cut))")))
    want = cuts_at(replay, k)
    check(drawn == want, f"{label}: the cut links drawn at step {k} equal the recorded ones ({len(want)} cut: {want[:4]}; drawn {drawn[:4]})")


GRID = """JSON.stringify([...document.querySelectorAll('#grid td[data-slot]')].map(td => [+td.dataset.node, +td.dataset.slot, td.dataset.state, td.textContent]))"""


def check_grid(browser, replay, k, label):
    browser.eval("replay.go(%d)" % k)
    cells = json.loads(browser.eval(GRID))
    state = state_at(replay, k)
    wrong = []
    for node, slot, shown_state, text in cells:
        want = slot_state(state[node], slot) if node in state else "empty"
        if shown_state != want:
            wrong.append(f"n{node} s{slot}: shown {shown_state}, recorded {want}")
        entry = next((e for e in state.get(node, {}).get("log", []) if e["slot"] == slot), None) if node in state else None
        if want == "accepted" and entry and text != entry["ballot"]:
            wrong.append(f"n{node} s{slot}: shows {text!r}, accepted in {entry['ballot']}")
    kinds = sorted({c[2] for c in cells})
    check(cells and not wrong, f"{label}: the log grid at step {k} equals the recorded state ({len(cells)} cells: {kinds})" + ("" if not wrong else ": " + "; ".join(wrong[:4])))
    return {c[2] for c in cells}


PANELS = """JSON.stringify({step: +document.body.dataset.step,
  where: document.getElementById('where').textContent,
  nodes: [...document.querySelectorAll('#nodes .node')].map(n => ({id: +n.dataset.node,
    fields: Object.fromEntries([...n.querySelectorAll('dd')].map(d => [d.dataset.field, d.textContent]))}))})"""


def check_shown_state(browser, replay, expected_step, label):
    page = json.loads(browser.eval(PANELS))
    check(page["step"] == expected_step, f"{label}: the page shows step {page['step']}, expected {expected_step}")
    check(page["where"].startswith(f"step {expected_step} /"), f"{label}: the step counter reads '{page['where']}'")
    expected = state_at(replay, page["step"])
    mismatches = []
    for node in page["nodes"]:
        want = expected.get(node["id"])
        for field in FIELDS:
            text = shown(field, want.get(field)) if want else ("not started" if field == "status" else "–")
            if node["fields"].get(field) != text:
                mismatches.append(f"n{node['id']}.{field}: shown {node['fields'].get(field)!r}, recorded {text!r}")
    check(not mismatches and len(page["nodes"]) >= len(expected),
          f"{label}: the node panels equal the recorded state at step {page['step']}" + ("" if not mismatches else ": " + "; ".join(mismatches[:4])))


COLORS = """JSON.stringify([...document.querySelectorAll('body, #caption, button, .node dd, .node dt, #meta, .note, #events li')].slice(0, 60).map(e => {
  const s = getComputedStyle(e); let bg = null, p = e;
  while (p) { const c = getComputedStyle(p).backgroundColor; if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { bg = c; break; } p = p.parentElement; }
  return [e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className, s.color, bg || 'rgb(255, 255, 255)']; }))"""


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    chromium, run_path, break_path, outdir = sys.argv[1:5]
    tour_dir = sys.argv[5] if len(sys.argv) == 6 else None
    run, broken = embedded_replay(run_path), embedded_replay(break_path)
    n = len(run["steps"])
    check(n > 60, f"the correct run's replay has {n} steps")
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(chromium, profile)
        try:
            # A step named in the URL, then the keyboard: forward, back, first, last.
            browser.open("file://" + os.path.abspath(run_path) + "#step=40", ready=REPLAY_READY)
            check_shown_state(browser, run, 40, "#step=40")
            for _ in range(3):
                browser.key("ArrowRight")
            check_shown_state(browser, run, 43, "→ ×3")
            for _ in range(2):
                browser.key("ArrowLeft")
            check_shown_state(browser, run, 41, "← ×2")
            browser.key("Home")
            check_shown_state(browser, run, 0, "Home")
            browser.key("ArrowLeft")
            check_shown_state(browser, run, 0, "← at the first step")
            browser.key("End")
            check_shown_state(browser, run, n - 1, "End")
            # Every step in a stretch, forward and back, against the record.
            browser.eval("replay.go(100)")
            for k in range(101, 131):
                browser.key("ArrowRight")
                check_shown_state(browser, run, k, f"→ to {k}")
            for k in range(129, 99, -1):
                browser.key("ArrowLeft")
                check_shown_state(browser, run, k, f"← to {k}")
            page = json.loads(browser.eval(PANELS))
            check(page["step"] == 100, f"30 steps forward and 30 back return to step 100 (at {page['step']})")
            # The timeline scrubs; the speed slider is logarithmic.
            browser.eval("(() => { const t = document.getElementById('timeline'); t.value = '77'; t.dispatchEvent(new Event('input')); })()")
            check_shown_state(browser, run, 77, "timeline scrubbed to 77")
            speeds = browser.eval("""(() => { const s = document.getElementById('speed'), o = [];
                for (const v of ['0', '1', '2', '3']) { s.value = v; s.dispatchEvent(new Event('input')); o.push(document.getElementById('speedout').textContent); }
                s.value = '6'; s.dispatchEvent(new Event('input')); return o; })()""")
            check(speeds == ["1.0 steps/s", "2.0 steps/s", "4.0 steps/s", "8.0 steps/s"], f"the speed slider doubles per notch: {speeds}")
            # Space plays (at 64 steps/s) and pauses.
            browser.key(" ")
            time.sleep(1.0)
            browser.key(" ")
            playing = browser.eval("document.getElementById('play').textContent")
            page = json.loads(browser.eval(PANELS))
            check(page["step"] > 80 and "Play" in playing, f"space plays and pauses (from 77 to {page['step']}; button '{playing}')")
            check_shown_state(browser, run, page["step"], "after playing")
            # Messages drawn, a caption in words.
            drawn = browser.eval("document.querySelectorAll('#net line').length")
            caption = browser.eval("document.getElementById('caption').textContent")
            check(browser.eval("document.querySelectorAll('#net g[data-node]').length") >= run["nodeCount"], "every node is drawn")
            check(len(caption) > 20, f"a caption in words ({caption[:70]!r}...)")
            browser.eval("replay.go(%d)" % next(i for i, s in enumerate(run["steps"]) if any(m["type"] == "Accept" for m in s["messages"])))
            drawn = browser.eval("document.querySelectorAll('#net line').length")
            check(drawn > 0, f"messages are drawn between nodes at a step with an Accept ({drawn} lines)")
            # Readable contrast (WCAG AA, 4.5:1) of the text on its background.
            low = [(name, c, bg, round(contrast(rgb(c), rgb(bg)), 2)) for name, c, bg in json.loads(browser.eval(COLORS))
                   if contrast(rgb(c), rgb(bg)) < 4.5]
            check(not low, f"text contrast is at least 4.5:1 everywhere checked{': ' + str(low[:3]) if low else ''}")
            # A partition is drawn as cut links while it holds, and not after it heals.
            cut_steps = [i for i, s in enumerate(run["steps"]) if s.get("cuts") and any(
                re.match(r"NEMESIS (splits|isolates|cuts)", note["text"]) for note in s["notes"])]
            check(bool(cut_steps), f"the correct run's replay has a partition ({len(cut_steps)} steps start one)")
            if cut_steps:
                k = cut_steps[0]
                browser.eval("replay.go(%d)" % k)
                check_cut_links(browser, run, k, "partition")
                check(browser.eval("document.querySelectorAll('#net [data-cut]').length") > 0, f"cut links are drawn at step {k}, where a partition starts")
                healed = next((i for i, s in enumerate(run["steps"]) if i > k and s.get("cuts") == []), None)
                check(healed is not None, "the partition heals in the record")
                if healed is not None:
                    browser.eval("replay.go(%d)" % healed)
                    check_cut_links(browser, run, healed, "healed")
                    check(browser.eval("document.querySelectorAll('#net [data-cut]').length") == 0, f"no cut link is drawn at step {healed}, after the heal")
                    browser.eval("replay.go(%d)" % (healed - 1))
                    check_cut_links(browser, run, healed - 1, "just before the heal")
            one_way = next((i for i, s in enumerate(run["steps"]) if any("(one-way)" in note["text"] for note in s["notes"])), None)
            check(one_way is not None, "the correct run's replay has a one-way cut")
            if one_way is not None:
                browser.eval("replay.go(%d)" % one_way)
                check_cut_links(browser, run, one_way, "one-way cut")
                labels = browser.eval("[...document.querySelectorAll('#net [data-cut] text')].map(t => t.textContent).join(' ')")
                check("one-way" in labels, f"a one-way cut is labelled as such ({labels[:60]!r})")
            # A crashed or stalled node is marked on the drawing.
            for status in ("down", "stalled"):
                at = next((i for i, s in enumerate(run["steps"]) if any(n["status"] == status for n in s["nodes"])), None)
                if at is not None:
                    browser.eval("replay.go(%d)" % at)
                    marked = browser.eval(f"document.querySelectorAll('#net g[data-status=\"{status}\"]').length")
                    check(marked >= 1, f"a {status} node is marked at step {at}")
            # The log grid: every cell against the record, at a few steps.
            seen_kinds = set()
            open_steps = [i for i, s in enumerate(run["steps"]) if any(n.get("log") for n in s["nodes"])]
            for k in sorted({40, 100, n // 2, n - 1} | set(open_steps[:2]) | set(open_steps[-1:])):
                seen_kinds |= check_grid(browser, run, k, "grid")
            check({"applied", "accepted"} <= seen_kinds, f"the grid showed applied and accepted slots at the steps checked ({sorted(seen_kinds)})")
            browser.eval("replay.go(40)")
            browser.screenshot(os.path.join(outdir, "replay.png"))

            # The --break run: it stops at the violation and shows it.
            violation = broken.get("violation")
            check(violation is not None, "the --break run's replay holds a violation")
            if violation:
                v = violation["step"]
                browser.open("file://" + os.path.abspath(break_path) + f"#step={max(0, v - 6)}", ready=REPLAY_READY)
                check_shown_state(browser, broken, max(0, v - 6), "break run, before the violation")
                browser.eval("document.getElementById('speed').value = '5'; document.getElementById('speed').dispatchEvent(new Event('input'))")
                browser.key(" ")
                time.sleep(1.5)
                page = json.loads(browser.eval(PANELS))
                check(page["step"] == v, f"playing stops at the violation (step {page['step']}, violation at {v})")
                check_shown_state(browser, broken, v, "at the violation")
                box = browser.eval("(() => { const b = document.getElementById('violation'); return [getComputedStyle(b).display, b.classList.contains('here'), b.textContent]; })()")
                check(box[0] != "none" and box[1], "the violation box is shown and marked as here")
                check(violation["text"].split("\n")[0][:60] in box[2], "the violation box quotes the violation")
                led = browser.eval("document.querySelectorAll('#violation a[data-go]').length")
                check(led >= len(violation.get("messageIDs", [])) > 0, f"the messages that led there are listed ({led} links)")
                browser.screenshot(os.path.join(outdir, "replay-violation.png"))

            # The guided tour: the index links every scenario; a scenario's page shows its
            # title and description and links back to the index.
            if tour_dir:
                browser.open("file://" + os.path.abspath(os.path.join(tour_dir, "index.html")),
                             ready="document.readyState === 'complete' && location.href.startsWith('file:')")
                links = json.loads(browser.eval("JSON.stringify([...document.querySelectorAll('#scenarios a')].map(a => [a.getAttribute('href'), a.textContent]))"))
                pages = sorted(f for f in os.listdir(tour_dir) if f.endswith(".html") and f != "index.html")
                check(len(links) >= 5 and sorted(h for h, _ in links) == pages, f"the tour index links every scenario's page ({len(links)} links, {len(pages)} pages)")
                for href, title in links[:2] + links[-1:]:
                    browser.open("file://" + os.path.abspath(os.path.join(tour_dir, href)), ready=REPLAY_READY)
                    heading = browser.eval("document.getElementById('title').textContent")
                    intro = browser.eval("(document.getElementById('tourtext') || {}).textContent || ''")
                    back = browser.eval("[...document.querySelectorAll('.tournav a')].map(a => a.getAttribute('href')).join(' ')")
                    check(title in heading and len(intro) > 100, f"tour page {href} shows its title ({heading!r}) and description ({len(intro)} characters)")
                    check(back == "index.html", f"tour page {href} links back to the index ({back!r})")
                    check(browser.eval("replay.steps") > 50, f"tour page {href} replays its run ({browser.eval('replay.steps')} steps)")
                if links:
                    browser.eval("replay.go(%d)" % 0)
                    browser.screenshot(os.path.join(outdir, "replay-tour.png"))
        finally:
            browser.close()
    print(f"{'FAILED' if FAILURES else 'passed'}: {len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
