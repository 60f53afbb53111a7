#!/usr/bin/env python3
"""Headless Chromium for the e2e suite, driven over the Chrome DevTools Protocol.

  browser.py check URL [--screenshot OUT.png] [--width 1280] [--height 800] [--full-page]
                       [--extract JS-EXPRESSION] [--timeout 20]
  browser.py selftest

`check` loads URL in a fresh headless Chromium (its own temporary profile) and prints one
JSON object: {"url", "status", "title", "consoleErrors", "failedRequests", "data"}.
consoleErrors holds console messages of level error or warning, uncaught exceptions and
the browser's own error/warning log entries; failedRequests holds every request that
failed to load and every response (document or subresource) with status >= 400. "data"
is the value of --extract, evaluated in the page. Exit 0 once the page has loaded, however
many errors it reports (the caller judges them); exit 1 when Chromium does not start or the
page does not load within --timeout seconds. Chromium and its profile are removed on exit.

`selftest` serves a page with a console error, an uncaught exception and a missing image,
and a clean page, and checks that exactly those problems are reported: a driver that
missed errors would make every page look clean.

Standard library only: the WebSocket client (RFC 6455, text frames, client masking, no
extensions) is below.
"""

import argparse
import base64
import hashlib
import http.server
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


class BrowserError(Exception):
    pass


# ---- WebSocket (RFC 6455) ----------------------------------------------------------------
class WebSocket:
    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BrowserError("DevTools closed the connection during the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise BrowserError(f"WebSocket handshake refused: {lines[0]}")
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if headers.get("sec-websocket-accept") != accept:
            raise BrowserError("WebSocket handshake: wrong Sec-WebSocket-Accept")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise BrowserError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self, timeout):
        """The next text message, or None when none arrives within timeout seconds."""
        self.sock.settimeout(timeout)
        message = b""
        while True:
            try:
                b0, b1 = self._read(2)
            except socket.timeout:
                if message:
                    raise BrowserError("DevTools stopped in the middle of a message")
                return None
            self.sock.settimeout(30)  # the rest of a started frame comes promptly
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise BrowserError("DevTools closed the WebSocket")
            elif opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()
            self.sock.settimeout(timeout)

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Stop:
    """SIGTERM and SIGINT end the program through `finally` (which removes Chromium), but
    not while Chromium is being removed."""

    def __init__(self):
        self.holding = 0
        self.pending = None

    def handle(self, signum, _frame):
        self.pending = signum
        self.act()

    def act(self):
        if self.pending and not self.holding:
            raise SystemExit(128 + self.pending)


STOP = Stop()


# ---- Chromium ----------------------------------------------------------------------------
def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise BrowserError("no Chromium found (install the chromium package, or set CHROMIUM)")


class Chromium:
    """A headless Chromium in its own process group with a throwaway profile."""

    def __init__(self, timeout):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.events = []
        self.stderr_tail = []
        try:
            self._start(timeout)
        except BaseException:  # also SIGTERM while starting: nothing may outlive us
            self.close()
            raise

    def _start(self, timeout):
        exe = find_chromium()
        self.proc = subprocess.Popen(
            [
                exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-component-update",
                "--hide-scrollbars", "--mute-audio", "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        lines = queue.Queue()

        def drain():  # keeps reading so Chromium never blocks on a full pipe
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.stderr_tail = (self.stderr_tail + [line])[-20:]
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                why = "exited" if self.proc.poll() is not None else f"did not listen within {timeout}s"
                raise BrowserError(f"Chromium ({exe}) {why}; its last output:\n  " + "\n  ".join(self.stderr_tail))
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                self.ws = WebSocket(m.group(1), timeout)
                return

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self.next_id

    def call(self, method, params=None, session=None, timeout=20):
        """Sends a command and waits for its result; events meanwhile go to self.events."""
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self.ws.recv(left) if left > 0 else None
            if msg is None:
                raise BrowserError(f"{method}: no answer within {timeout}s")
            msg = json.loads(msg)
            if msg.get("id") == want:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def pump(self, seconds):
        """Collects events for the given time."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.ws.recv(left)
            if msg is None:
                return
            msg = json.loads(msg)
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method, seconds, start=0):
        """Index of the first event METHOD at or after events[start], waiting up to seconds."""
        deadline = time.monotonic() + seconds
        while True:
            for i in range(start, len(self.events)):
                if self.events[i]["method"] == method:
                    return i
            start = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(min(left, 0.2))

    def close(self):
        # A SIGTERM or Ctrl-C in the middle of this would leave Chromium running: it is
        # held back until everything is gone, then acted on.
        STOP.holding += 1
        try:
            self._close()
        finally:
            STOP.holding -= 1
        STOP.act()

    def _close(self):
        if self.ws:
            try:
                self.send("Browser.close")
            except OSError:
                pass
            self.ws.close()
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        if self.proc:
            # The whole process group: the renderers and zygotes too. The profile goes only
            # once none of them is left to write into it.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not self._group_signal(sig):
                    break
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and self._group_signal(0):
                    self.proc.poll()
                    time.sleep(0.05)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _group_signal(self, sig):
        """Sends sig to Chromium's process group; False when the group is gone."""
        try:
            os.killpg(self.proc.pid, sig)
            return True
        except ProcessLookupError:
            return False


# ---- check -------------------------------------------------------------------------------
def remote_text(obj):
    if "value" in obj:
        return obj["value"] if isinstance(obj["value"], str) else json.dumps(obj["value"])
    return obj.get("description") or obj.get("unserializableValue") or obj.get("type", "")


def browser_favicon(url):
    """The favicon Chromium asks for on its own: not a request of the page, so not its failure."""
    return urllib.parse.urlsplit(url).path == "/favicon.ico"


def problems(events):
    """consoleErrors and failedRequests from the recorded DevTools events."""
    console, failed, requests = [], [], {}
    for e in events:
        method, p = e["method"], e.get("params", {})
        url = p.get("response", p.get("entry", {})).get("url") or requests.get(p.get("requestId"), "")
        if browser_favicon(url) and p.get("type", "Other") == "Other":
            continue
        if method == "Network.requestWillBeSent":
            requests[p["requestId"]] = p["request"]["url"]
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            console.append({"source": "console", "level": p["type"],
                            "text": " ".join(remote_text(a) for a in p.get("args", []))})
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = remote_text(d["exception"]) if "exception" in d else d.get("text", "")
            console.append({"source": "exception", "level": "error", "text": text, "url": d.get("url", "")})
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            entry = p["entry"]
            console.append({"source": entry.get("source", "other"), "level": entry["level"],
                            "text": entry.get("text", ""), "url": entry.get("url", "")})
        elif method == "Network.responseReceived" and p["response"]["status"] >= 400:
            failed.append({"url": p["response"]["url"], "status": p["response"]["status"], "type": p.get("type", "")})
        elif method == "Network.loadingFailed":
            failed.append({"url": requests.get(p["requestId"], ""), "error": p.get("errorText", ""),
                           "type": p.get("type", ""), "canceled": p.get("canceled", False)})
    return console, failed


def check(url, screenshot=None, width=1280, height=800, full_page=False, extract=None, timeout=20):
    browser = Chromium(timeout)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        start = len(browser.events)
        try:
            nav = browser.call("Page.navigate", {"url": url}, session=session, timeout=timeout)
        except BrowserError as e:
            raise BrowserError(f"{url} did not load within {timeout}s ({e})") from None
        if nav.get("errorText"):
            raise BrowserError(f"{url} did not load: {nav['errorText']}")
        if browser.wait_event("Page.loadEventFired", timeout, start) is None:
            raise BrowserError(f"{url} did not finish loading within {timeout}s")
        def evaluate(expression):
            r = browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                  "awaitPromise": True}, session=session)
            if "exceptionDetails" in r:
                d = r["exceptionDetails"]
                raise BrowserError(f"evaluating {expression!r}: {remote_text(d.get('exception', {})) or d.get('text')}")
            return r["result"].get("value")

        # The expression first: whatever it asks the server (the page's own API, say) then
        # comes as close as possible to the moment the page was served.
        data = evaluate(extract) if extract else None
        title = evaluate("document.title")
        browser.pump(0.3)  # late console messages and subresource failures
        status = None
        for e in browser.events[start:]:
            p = e.get("params", {})
            if e["method"] == "Network.responseReceived" and p.get("requestId") == nav.get("loaderId"):
                status = p["response"]["status"]
        if screenshot:
            metrics = browser.call("Page.getLayoutMetrics", session=session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot_height = max(height, math.ceil(size["height"])) if full_page else height
            png = browser.call("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True, "fromSurface": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": shot_height, "scale": 1},
            }, session=session, timeout=timeout)["data"]
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(png))
        console, failed = problems(browser.events[start:])
        return {"url": url, "status": status, "title": title, "consoleErrors": console,
                "failedRequests": failed, "data": data}
    finally:
        browser.close()


# ---- selftest ----------------------------------------------------------------------------
PAGES = {
    "/broken": "<!doctype html><html><head><title>broken</title></head><body data-page=\"broken\">"
               "<p>a page with problems</p><img src=\"/missing.png\" alt=\"\">"
               "<script>console.error('selftest: console error')</script>"
               "<script>throw new Error('selftest: uncaught')</script></body></html>",
    "/clean": "<!doctype html><html><head><title>clean</title></head><body data-page=\"clean\">"
              "<h1>clean</h1><svg width=\"100\" height=\"20\"><line x1=\"0\" y1=\"10\" x2=\"100\" y2=\"10\" "
              "stroke=\"black\"/></svg><p style=\"height:1500px\">tall</p></body></html>",
}


class SelftestHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        page = PAGES.get(self.path)
        body = (page or "not found").encode()
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8" if page else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack("!II", head[16:24])


def selftest():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SelftestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    shots = tempfile.mkdtemp(prefix="browser-selftest-")
    wrong = []
    try:
        broken = check(base + "/broken", extract="document.body.dataset.page")
        texts = [c["text"] for c in broken["consoleErrors"]]
        if not any("selftest: console error" in t for t in texts):
            wrong.append(f"console.error not reported: {texts}")
        if not any("selftest: uncaught" in t for t in texts):
            wrong.append(f"uncaught exception not reported: {texts}")
        if not any(r["url"] == base + "/missing.png" and r.get("status") == 404 for r in broken["failedRequests"]):
            wrong.append(f"404 image not reported: {broken['failedRequests']}")
        if (broken["status"], broken["title"], broken["data"]) != (200, "broken", "broken"):
            wrong.append(f"status/title/extract: {broken['status']}, {broken['title']!r}, {broken['data']!r}")
        shot = os.path.join(shots, "clean.png")
        clean = check(base + "/clean", screenshot=shot, full_page=True, extract="document.querySelectorAll('svg line').length")
        if clean["consoleErrors"] or clean["failedRequests"]:
            wrong.append(f"clean page reported problems: {clean['consoleErrors']} {clean['failedRequests']}")
        if clean["data"] != 1:
            wrong.append(f"extract on the clean page: {clean['data']!r}")
        size = png_size(shot)
        if not size or size[0] != 1280 or size[1] < 1500:
            wrong.append(f"full-page screenshot of the clean page: {size}, want 1280 wide and >= 1500 high")
        missing = check(base + "/nothing-here")
        if missing["status"] != 404 or not any(r.get("status") == 404 and r["type"] == "Document" for r in missing["failedRequests"]):
            wrong.append(f"404 document: status {missing['status']}, {missing['failedRequests']}")
    finally:
        server.shutdown()
        shutil.rmtree(shots, ignore_errors=True)
    if wrong:
        print("browser.py selftest: FAILED\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    print("browser.py selftest: ok (console error, uncaught exception, 404 image and 404 document reported; clean page clean; screenshot 1280x%d)" % size[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="load a page, report its errors as JSON, take a screenshot")
    c.add_argument("url")
    c.add_argument("--screenshot", metavar="OUT.png")
    c.add_argument("--width", type=int, default=1280)
    c.add_argument("--height", type=int, default=800)
    c.add_argument("--full-page", action="store_true")
    c.add_argument("--extract", metavar="JS-EXPRESSION")
    c.add_argument("--timeout", type=float, default=20)
    sub.add_parser("selftest", help="prove that console errors and failed requests are reported")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, STOP.handle)
    signal.signal(signal.SIGINT, STOP.handle)
    try:
        if args.command == "selftest":
            return selftest()
        result = check(args.url, args.screenshot, args.width, args.height, args.full_page, args.extract, args.timeout)
        print(json.dumps(result, indent=1))
        return 0
    except (BrowserError, OSError) as e:
        print(f"browser.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
