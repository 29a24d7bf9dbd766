"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on fd 3, answers on fd 4, NUL-separated JSON), with the Python standard library
only; and the WCAG contrast arithmetic. Shared by the browser tests (replay_test.py,
live_test.py), which their shell scripts copy next to this file."""
import base64, fcntl, json, os, re, subprocess, time


def wait_for(what, timeout, interval=0.2):
    """Polls `what` until it returns something true, for up to `timeout` seconds."""
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        try:
            value = what()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(interval)
    return value


class Browser:
    KEYS = {" ": ("Space", 32, " "), "ArrowRight": ("ArrowRight", 39, None), "ArrowLeft": ("ArrowLeft", 37, None),
            "Home": ("Home", 36, None), "End": ("End", 35, None), "Tab": ("Tab", 9, None), "Enter": ("Enter", 13, "\r")}

    def __init__(self, chromium, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 20)
        high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 20)

        def wire():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        args = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--no-first-run", "--window-size=1400,1000", "about:blank"]
        self.process = subprocess.Popen(args, preexec_fn=wire, pass_fds=(3, 4, high_r, high_w),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_chrome_r, from_chrome_w, high_r, high_w):
            os.close(fd)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        self.target = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.time() + 30
        while time.time() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        raise RuntimeError(f"{method}: no answer in 30 s")

    def open(self, url, ready="document.readyState === 'complete'"):
        """Opens `url` in a fresh tab (closing the previous one), 1400×1000, and waits up to 30 s
        for the expression `ready` to be true."""
        if self.session:
            self.send("Target.closeTarget", {"targetId": self.target}, session=False)
            self.session = None
        self.target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": self.target, "flatten": True}, session=False)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})
        if not wait_for(lambda: self.eval(ready), 30, interval=0.1):
            raise RuntimeError(f"{url} did not load")

    def eval(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector):
        """A real mouse click at the element's centre (scrolled into view first); False when
        there is no such element."""
        where = self.eval("(() => { const e = document.querySelector(%s); if (!e) return null; e.scrollIntoView({block: 'center'});"
                          " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()" % json.dumps(selector))
        if not where:
            return False
        x, y = where
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
        return True

    def key(self, key):
        code, vk, text = self.KEYS[key]
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk}
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", down)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk})

    def type_into(self, selector, text):
        """Focuses the field, selects what it holds and types `text` over it."""
        self.eval("document.querySelector(%s).focus(); document.querySelector(%s).select && document.querySelector(%s).select()"
                  % ((json.dumps(selector),) * 3))
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def luminance(rgb):
    """WCAG relative luminance of an sRGB colour (0–255 channels)."""
    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a, b):
    la, lb = sorted([luminance(a), luminance(b)], reverse=True)
    return (la + 0.05) / (lb + 0.05)


def rgb(text):
    """The channels of a computed colour such as 'rgb(22, 24, 29)'."""
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])
