"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

No driver and no Python package beyond the standard library: Chromium reads JSON
commands, each ended by a NUL byte, on its file descriptor 3 and writes replies
and events on 4. Debian's ``chromium`` only; nothing here downloads a browser.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

# Without the background-networking flags Chromium dials out (and the closed network refuses it).
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-default-apps', '--disable-extensions', '--mute-audio', '--remote-debugging-pipe']


def find_chromium() -> Optional[str]:
    """Debian's Chromium binary, or None."""
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Browser:
    """One Chromium process with one page; ``events`` collects console errors and exceptions."""

    def __init__(self, binary: str, width: int = 1280, height: int = 1400):
        self._profile = tempfile.mkdtemp(prefix='d2lnets-chromium-')
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds():   # in the child: the pipe ends as 3 and 4, where Chromium looks for them
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)
        self.proc = subprocess.Popen([binary, *FLAGS, '--user-data-dir=' + self._profile,
                                      '--window-size=%d,%d' % (width, height), 'about:blank'],
                                     preexec_fn=fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next = 0
        self._replies: Dict[int, Dict] = {}
        self.events: List[Dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.send('Target.createTarget', url='about:blank')['targetId']
        self.session = self.send('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
        for domain in ('Runtime', 'Log', 'Page', 'Network'):
            self.call(domain + '.enable')
        self.call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def _read(self) -> None:
        buffer = b''
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b'\0')
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if 'id' in message:
                        self._replies[message['id']] = message
                    else:
                        self.events.append(message)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(self, method: str, session: Optional[str] = None, timeout: float = 30, **params) -> Dict:
        """Send one command (to the page's session if ``session``) and wait for its reply."""
        with self._cond:
            self._next += 1
            ident = self._next
        message = {'id': ident, 'method': method, 'params': params}
        if session:
            message['sessionId'] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise CDPError('no reply to %s within %g s' % (method, timeout))
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if 'error' in reply:
            raise CDPError('%s: %s' % (method, reply['error']))
        return reply.get('result', {})

    def call(self, method: str, **params) -> Dict:
        """A command to the page."""
        return self.send(method, session=self.session, **params)

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression in the page (a Promise is awaited)."""
        result = self.send('Runtime.evaluate', session=self.session, timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if 'exceptionDetails' in result:
            raise CDPError('%s: %s' % (expression, result['exceptionDetails']))
        return result['result'].get('value')

    def goto(self, url: str, timeout: float = 30) -> None:
        self.call('Page.navigate', url=url)
        deadline = time.monotonic() + timeout
        while self.evaluate('document.readyState') != 'complete':
            if time.monotonic() > deadline:
                raise CDPError('%s did not load within %g s' % (url, timeout))
            time.sleep(0.05)

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A real mouse event at (x, y) CSS pixels: 'mousePressed', 'mouseMoved' or 'mouseReleased';
        Chromium turns it into the pointer events a page sees."""
        buttons = 0 if kind == 'mouseReleased' else 1
        self.call('Input.dispatchMouseEvent', type=kind, x=x, y=y, button='left', buttons=buttons,
                  clickCount=1 if kind != 'mouseMoved' else 0)

    def set_file(self, selector: str, path: str) -> None:
        """Choose ``path`` in the file input ``selector`` (its change event fires)."""
        root = self.call('DOM.getDocument')['root']['nodeId']
        node = self.call('DOM.querySelector', nodeId=root, selector=selector)['nodeId']
        self.call('DOM.setFileInputFiles', nodeId=node, files=[path])

    def screenshot(self, clip: Dict[str, float], beyond_viewport: bool = True) -> bytes:
        """A PNG of the region ``clip`` {x, y, width, height} of the page (document coordinates).
        ``beyond_viewport`` lets it extend below the window, but the capture lays the page out
        again, taller (a code block's scrollbar goes, and what follows it moves up): for a region
        found in the window's layout, scroll it into view and pass False."""
        data = self.call('Page.captureScreenshot', format='png', captureBeyondViewport=beyond_viewport,
                         clip=dict(clip, scale=1))['data']
        return base64.b64decode(data)

    def errors(self) -> List[str]:
        """Console errors, uncaught exceptions and error log entries so far."""
        found = []
        with self._cond:
            events = list(self.events)
        for e in events:
            method, params = e.get('method'), e.get('params', {})
            if method == 'Runtime.exceptionThrown':
                found.append('exception: %s' % params['exceptionDetails'].get('exception', {}).get(
                    'description', params['exceptionDetails'].get('text')))
            elif method == 'Runtime.consoleAPICalled' and params.get('type') in ('error', 'assert'):
                found.append('console.%s: %s' % (params['type'], ' '.join(
                    str(a.get('value', a.get('description'))) for a in params.get('args', []))))
            elif method == 'Log.entryAdded' and params['entry'].get('level') == 'error':
                found.append('log: %s %s' % (params['entry'].get('text'), params['entry'].get('url', '')))
        return found

    def failed_requests(self) -> List[str]:
        """Requests so far that got no response (``URL: net::ERROR``) or an HTTP error (``URL: HTTP 404``)."""
        urls, found = {}, []
        with self._cond:
            events = list(self.events)
        for e in events:
            method, params = e.get('method'), e.get('params', {})
            if method == 'Network.requestWillBeSent':
                urls[params['requestId']] = params['request']['url']
            elif method == 'Network.loadingFailed':
                found.append('%s: %s' % (urls.get(params['requestId'], '?'), params['errorText']))
            elif method == 'Network.responseReceived' and params['response']['status'] >= 400:
                found.append('%s: HTTP %d' % (params['response']['url'], params['response']['status']))
        return found

    def close(self) -> None:
        try:
            self.send('Browser.close', timeout=5)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        shutil.rmtree(self._profile, ignore_errors=True)
