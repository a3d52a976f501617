"""A small W3C WebDriver client (standard library only) for the browser tests: starts
Debian's chromedriver, opens headless Chromium, and offers the few commands the tests use."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
# WebDriver's codes of the keys the tests press.
KEYS = {"ArrowLeft": "\ue012", "ArrowRight": "\ue014", "Escape": "\ue00c"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Headless Chromium driven through chromedriver; downloads go to `downloads`."""

    def __init__(self, downloads, width=1280, height=800):
        driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        for path in (driver, chromium):
            if not os.path.exists(path):
                raise SystemExit(
                    f"{path} is missing: install Debian's chromium and chromium-driver "
                    "(scripts/test.sh does)"
                )
        self.profile = tempfile.mkdtemp(prefix="vog-chromium-")
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(
            [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_for_driver()
        # The flags a closed network needs (no background connections), as root in a sandbox.
        args = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
        ]
        prefs = {
            "download.default_directory": downloads,
            "download.prompt_for_download": False,
        }
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args, "prefs": prefs},
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]
        # Headless Chromium saves downloads only where it is told to.
        self._call("POST", f"/session/{self.session}/goog/cdp/execute", {
            "cmd": "Browser.setDownloadBehavior",
            "params": {"behavior": "allow", "downloadPath": downloads},
        })

    def _wait_for_driver(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise SystemExit("chromedriver did not start within 30 s")

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value") or {}
        except urllib.error.HTTPError as e:
            raise SystemExit(f"WebDriver {method} {path}: {e.read().decode()[:500]}")

    def _s(self, path):
        return f"/session/{self.session}{path}"

    def open(self, url):
        self._call("POST", self._s("/url"), {"url": url})

    def refresh(self):
        self._call("POST", self._s("/refresh"), {})

    def script(self, source, *args):
        return self._call("POST", self._s("/execute/sync"), {"script": source, "args": list(args)})

    def find(self, css):
        return self._call("POST", self._s("/element"), {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self._call("POST", self._s(f"/element/{self.find(css)}/click"), {})

    def text(self, css):
        return self._call("GET", self._s(f"/element/{self.find(css)}/text"))

    def press(self, *keys):
        """Presses each key (a character, or a name in KEYS) as a person would."""
        actions = []
        for k in keys:
            v = KEYS.get(k, k)
            actions += [{"type": "keyDown", "value": v}, {"type": "keyUp", "value": v}]
        self._call("POST", self._s("/actions"),
                   {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})
        self._call("DELETE", self._s("/actions"))

    def screenshot(self, path):
        import base64
        png = self._call("GET", self._s("/screenshot"))
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))

    def close(self):
        try:
            self._call("DELETE", self._s(""))
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)
