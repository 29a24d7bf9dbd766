#!/usr/bin/env python3
"""Drives the cluster page of a running `synod cluster` in headless Chromium over the DevTools
protocol (--remote-debugging-pipe; Python standard library only): a leader shown, a failover
caused with the kill button, a put chosen everywhere, a restarted member catching up, the
controls worked with the keyboard, and text contrast. Started by live-test.sh.

usage: live_test.py CHROMIUM PAGE_URL OUTDIR
  PAGE_URL  the supervisor's page, e.g. http://127.0.0.1:12378
  OUTDIR    where the screenshots go
Exits 0 when every check passes, 1 otherwise.
"""
import json, os, sys, tempfile, time, urllib.request

from cdp import Browser, contrast, rgb, wait_for

FAILURES = []


def check(condition, text):
    print(("ok   " if condition else "FAIL ") + text, flush=True)
    if not condition:
        FAILURES.append(text)
    return condition


def state(url):
    with urllib.request.urlopen(url + "/ui/state", timeout=5) as answer:
        return json.load(answer)


SHOWN = """JSON.stringify({leader: (document.getElementById('leader') || {}).textContent,
  feed: (document.getElementById('feed-status') || {}).textContent,
  result: (document.getElementById('control-result') || {}).textContent,
  members: [...document.querySelectorAll('#members .member')].map(m => ({name: m.dataset.name, role: m.dataset.role,
    chosen: parseInt((m.querySelector('.chosen') || {}).textContent), applied: parseInt((m.querySelector('.applied') || {}).textContent),
    ballot: (m.querySelector('.ballot') || {}).textContent,
    isolated: ((m.querySelector('.isolated-flag') || {}).textContent || '').trim()})),
  slots: [...document.querySelectorAll('#slots .slot')].map(s => ({member: s.dataset.member, slot: +s.dataset.slot, state: s.dataset.state}))})"""


def shown(browser):
    return json.loads(browser.eval(SHOWN))


def member(page, name):
    return next((m for m in page["members"] if m["name"] == name), None)


# HTML elements holding text (a direct text node), their colour and the first opaque background
# up the tree. SVG text is coloured by `fill`, which this does not follow: it is left out.
COLORS = """JSON.stringify([...document.querySelectorAll('body *')].filter(e => !(e instanceof SVGElement) && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
  && getComputedStyle(e).visibility !== 'hidden' && e.getClientRects().length).slice(0, 200).map(e => {
  const s = getComputedStyle(e); let bg = null, p = e;
  while (p) { const c = getComputedStyle(p).backgroundColor; if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { bg = c; break; } p = p.parentElement; }
  const cls = typeof e.className === 'string' ? e.className : '';
  return [e.tagName + (e.id ? '#' + e.id : '') + (cls ? '.' + cls : ''), s.color, bg || 'rgb(255, 255, 255)']; }))"""


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    chromium, url, outdir = sys.argv[1:]
    first = wait_for(lambda: state(url), 30)
    if not check(bool(first), f"the supervisor serves {url}/ui/state"):
        sys.exit(1)
    check(first.get("servedBy") == "synod cluster" and first.get("controls"), "the state document is the supervisor's, with controls")
    names = [m["name"] for m in first["members"]]
    check(names == sorted(names) and len(names) == 3, f"three members in name order: {names}")
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(chromium, profile)
        try:
            browser.open(url + "/")
            # 1. One leader, shown the same in the heading and on the cards.
            page = wait_for(lambda: (lambda p: p if p["feed"] == "live" and p["leader"] not in ("", "none") else None)(shown(browser)), 30)
            if not check(bool(page), "the page goes live and shows a leader"):
                raise RuntimeError("no leader shown: " + json.dumps(shown(browser)))
            leader = page["leader"]
            leaders = [m["name"] for m in page["members"] if m["role"] == "leader"]
            check(leaders == [leader], f"exactly one member card is the leader, the one in #leader ({leaders} vs {leader})")
            check(state(url)["leader"] == leader, f"#leader ({leader}) is the supervisor's leader")
            browser.screenshot(os.path.join(outdir, "live-leader.png"))

            # 1b. The guided tour is linked from the page, and its pages are served.
            links = json.loads(browser.eval("JSON.stringify([...document.querySelectorAll('#tour a')].map(a => a.getAttribute('href')))"))
            check(len(links) >= 6 and "/ui/tour/index.html" in links, f"the page links the guided tour ({len(links)} links)")
            for href in [h for h in links if h.endswith(("index.html", "failover.html"))]:
                try:
                    with urllib.request.urlopen(url + href, timeout=120) as answer:
                        body = answer.read().decode()
                    check(answer.status == 200 and "<html" in body and ("Synod" in body), f"{href} is served ({len(body)} bytes)")
                except Exception as error:  # noqa: BLE001 - reported as a failed check
                    check(False, f"{href} is served: {error}")

            # 2. Failover: the kill button on the leader's card.
            timeout_ms = state(url).get("electionTimeoutMs") or 1000
            margin = 5.0
            started = time.time()
            check(browser.click(f'button[data-action="kill"][data-member="{leader}"]'), f"the leader {leader} has a kill button")
            result = wait_for(lambda: shown(browser)["result"], 5)
            check(bool(result) and "fail" not in result.lower(), f"#control-result answers the kill: {result!r}")

            def failed_over():
                p = shown(browser)
                old = member(p, leader)
                return p if p["leader"] not in ("", "none", leader) and old and old["role"] == "down" else None

            page = wait_for(failed_over, timeout_ms / 1000 + margin)
            took = time.time() - started
            if check(bool(page), f"within the election timeout + {margin:.0f} s ({timeout_ms} ms + margin) another leader is shown "
                                 f"and {leader} is down (took {took:.1f} s)"):
                new_leader = page["leader"]
                check([m["name"] for m in page["members"] if m["role"] == "leader"] == [new_leader],
                      f"exactly one leader card after the failover ({new_leader})")
            else:
                new_leader = None
                print("   shown:", json.dumps(shown(browser)))
            browser.screenshot(os.path.join(outdir, "live-failover.png"))
            live = [n for n in names if n != leader]

            # 3. A put through the form is chosen on every live member.
            before = {m["name"]: m.get("chosenThrough") or 0 for m in state(url)["members"] if m["name"] in live}
            browser.type_into("#put-key", "live-test")
            browser.type_into("#put-value", "hello from the browser")
            browser.click("#put-button")
            result = wait_for(lambda: (lambda r: r if r and "put" in r.lower() else None)(shown(browser)["result"]), 10)
            check(bool(result) and "fail" not in result.lower(), f"the put is answered ok: {result!r}")

            def chosen_everywhere():
                p = shown(browser)
                return p if all((member(p, n) or {}).get("chosen", 0) > before[n] for n in live) else None

            check(bool(wait_for(chosen_everywhere, 10)), f"every live member's .chosen moves past where it was ({before})")
            fallback = all(m.get("source") == "status" for m in state(url)["members"] if m.get("reachable"))
            if fallback:
                print("SKIP slots: the members serve no /ui/state (a build before the live member page); #slots is empty")
            else:
                def slot_everywhere():
                    p = shown(browser)
                    return p if all(any(s["member"] == n and s["slot"] > before[n] and s["state"] in ("chosen", "applied") for s in p["slots"])
                                    for n in live) else None
                check(bool(wait_for(slot_everywhere, 10)), "the put's slot is shown chosen or applied on every live member in #slots")

            # 4. The killed member restarted: a follower again, caught up.
            check(browser.click(f'button[data-action="restart"][data-member="{leader}"]'), f"{leader} has a restart button")

            def caught_up():
                p = shown(browser)
                back = member(p, leader)
                others = [member(p, n) for n in live]
                if not back or back["role"] != "follower" or any(o is None for o in others):
                    return None
                target = min(o.get("applied") or 0 for o in others)
                return p if (back.get("applied") or 0) >= target > 0 else None

            page = wait_for(caught_up, 30)
            check(bool(page), f"restarted, {leader} is a follower again and its .applied reaches the others'"
                  + ("" if page else ": " + json.dumps(shown(browser)["members"])))

            # 5. The keyboard: Tab reaches a control, Enter works it (pause a follower, then resume it).
            follower = next((n for n in live if n != (new_leader or "")), live[0])
            browser.eval("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
            target = f'button[data-action="pause"][data-member="{follower}"]'
            reached = False
            for _ in range(120):
                browser.key("Tab")
                if browser.eval(f"document.activeElement && document.activeElement.matches({json.dumps(target)})"):
                    reached = True
                    break
            check(reached, f"Tab reaches the pause button of {follower}")
            if reached:
                browser.key("Enter")
                check(bool(wait_for(lambda: (member(shown(browser), follower) or {}).get("role") == "paused", 5)),
                      f"Enter on it pauses {follower} (its card says paused)")
                resume = f'button[data-action="resume"][data-member="{follower}"]'
                for _ in range(40):
                    if browser.eval(f"document.activeElement && document.activeElement.matches({json.dumps(resume)})"):
                        break
                    browser.key("Tab")
                browser.key("Enter")
                check(bool(wait_for(lambda: (member(shown(browser), follower) or {}).get("role") in ("follower", "leader"), 10)),
                      f"Tab to resume and Enter: {follower} runs again")

            # 6. Cut off the leader (isolate): the others elect another; a put is chosen
            #    without it; heal, and it catches up.
            p = wait_for(lambda: (lambda q: q if q["leader"] not in ("", "none") else None)(shown(browser)), 10)
            cut = p["leader"] if p else None
            if check(bool(cut) and browser.click(f'button[data-action="isolate"][data-member="{cut}"]'),
                     f"the leader {cut} has an isolate button"):
                def cut_off():
                    q = shown(browser)
                    c = member(q, cut) or {}
                    return q if c.get("isolated") == "isolated" and q["leader"] not in ("", "none", cut) else None
                q = wait_for(cut_off, timeout_ms / 1000 + margin)
                check(bool(q), f"isolated, {cut}'s card says so and another leader is shown within the election timeout + margin"
                      + ("" if q else ": " + json.dumps(shown(browser))))
                stuck = (member(shown(browser), cut) or {}).get("chosen") or 0
                browser.type_into("#put-key", "while-cut-off")
                browser.type_into("#put-value", "v")
                browser.click("#put-button")
                others = [n for n in names if n != cut]

                def moved_on():
                    q = shown(browser)
                    return q if all(((member(q, n) or {}).get("chosen") or 0) > stuck for n in others) else None
                q = wait_for(moved_on, 10)
                check(bool(q) and ((member(q, cut) or {}).get("chosen") or 0) <= stuck,
                      f"a put is chosen on the others while {cut}'s chosen slot stays at {stuck}")
                check(browser.click(f'button[data-action="heal"][data-member="{cut}"]'), f"{cut} has a heal button")

                def healed():
                    q = shown(browser)
                    c = member(q, cut) or {}
                    target = max(((member(q, n) or {}).get("applied") or 0) for n in others)
                    return q if c.get("isolated") == "" and (c.get("applied") or 0) >= target > stuck else None
                check(bool(wait_for(healed, 15)), f"healed, {cut} catches up with the others")

            # 7. Readable text (WCAG AA, 4.5:1).
            colors = json.loads(browser.eval(COLORS))
            low = [(name, c, bg, round(contrast(rgb(c), rgb(bg)), 2)) for name, c, bg in colors if contrast(rgb(c), rgb(bg)) < 4.5]
            check(len(colors) > 5 and not low, f"text contrast is at least 4.5:1 on {len(colors)} elements{': ' + str(low[:3]) if low else ''}")
        finally:
            browser.close()
    print(f"{'FAILED' if FAILURES else 'passed'}: {len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
