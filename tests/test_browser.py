"""The docs' LeNet page (docs/browser/) in a real headless Chromium (issue 22, point 4).

The built site is served by a real HTTP server on 127.0.0.1; Debian's Chromium is driven over
the DevTools protocol (tests/cdp.py). For test images chosen in the page, drawings made by
pointer events and uploads, the page's input equals `d2lnets predict`'s preprocessing exactly,
the probabilities shown equal onnxruntime's in Python (on the page's ONNX file) to 1e-4, and
the answer is the class `d2lnets predict` gives (the MXNet network with the shipped weights).
The explain page (docs/explain.md) shows every picture the build drew (issue 21, point 5).
"""
import base64
import contextlib
import functools
import http.server
import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from cdp import Browser, find_chromium
from d2lnets import data
from d2lnets.deploy.images import load_images
from d2lnets.deploy.predict import predict_files, softmax
from test_docs import EXPLAIN, colours

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` "
                                                         'installs it as root with apt: apt-get install chromium)')
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / 'docs' / 'images' / 'browser-lenet.png'
TOLERANCE = 1e-4
DRAWN = 10          # test images drawn on the canvas, one of each class


class _Quiet(http.server.SimpleHTTPRequestHandler):
    # A module script and WebAssembly need their types (Python 3.11 knows neither without /etc/mime.types).
    extensions_map = dict(http.server.SimpleHTTPRequestHandler.extensions_map,
                          **{'.mjs': 'text/javascript', '.wasm': 'application/wasm'})

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def site(docs_site):
    proc, folder = docs_site
    assert proc.returncode == 0, proc.stdout + proc.stderr
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, 'http://127.0.0.1:%d/' % server.server_port
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def opened(url):
    """A fresh headless Chromium showing ``url`` (loaded), closed afterwards."""
    browser = Browser(CHROMIUM)
    try:
        browser.goto(url)
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope='module')
def page(site):
    with opened(site[1] + 'browser/index.html') as browser:
        settle(browser)
        yield browser


@pytest.fixture(scope='module')
def reference(site):
    """onnxruntime on the page's own ONNX file: image files -> probabilities, as predict prepares them."""
    import onnxruntime
    session = onnxruntime.InferenceSession(str(site[0] / 'generated' / 'browser' / 'lenet.onnx'),
                                           providers=['CPUExecutionProvider'])

    def run(paths):
        x = load_images([str(p) for p in paths], (1, 28, 28))
        return x, softmax(session.run(None, {'data': x})[0].astype(np.float64))
    return run


@pytest.fixture(scope='module')
def samples(site):
    import json
    return json.loads((site[0] / 'generated' / 'browser' / 'samples.json').read_text())


def settle(browser):
    """What the page shows once nothing is left to run: its state, and the probabilities as printed."""
    return browser.evaluate('''lenetPage.settled().then(() => {
        const s = lenetPage.state;
        const rows = Array.from(document.querySelectorAll('#probabilities td.p'));
        return {message: s.message, last: s.last, answer: document.getElementById('answer').textContent,
                printed: rows.map(td => [td.textContent, td.dataset.probability])};
    })''')


def click(browser, selector):
    """A real mouse click in the middle of the element (scrolled into view first)."""
    box = browser.evaluate('''(() => { const e = document.querySelector(%r); e.scrollIntoView({block: 'center'});
        const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()''' % selector)
    browser.mouse('mousePressed', *box)
    browser.mouse('mouseReleased', *box)


def png(path, array):
    from PIL import Image
    Image.fromarray(array).save(path)      # uint8: L, RGB or RGBA by the last axis
    return path


def check_shown(shown, x, probabilities, predicted, classes):
    """The page's input and printed probabilities against Python's, its answer against predict's."""
    assert shown['message'] == ''
    assert np.array_equal(np.asarray(shown['last']['input'], np.float32), x.ravel())
    page = np.asarray([float(p) for _, p in shown['printed']])
    printed = np.asarray([float(text) for text, _ in shown['printed']])
    assert np.abs(page - probabilities).max() <= TOLERANCE
    assert np.abs(printed - probabilities).max() <= TOLERANCE     # 4 decimals: rounding adds 5e-5 at most
    assert shown['answer'] == 'answer: %s' % classes[predicted]


CLASSES = data.FASHION_MNIST_CLASSES


def test_the_page_loads_without_console_errors_and_says_what_runs(page):
    from d2lnets.models.loading import pretrained_meta
    meta = pretrained_meta('lenet')
    assert page.errors() == []
    text = page.evaluate("document.getElementById('weights').textContent")
    assert 'shipped LeNet weights (%s, sha1 %s)' % (meta['file'], meta['sha1'][:12]) in text
    assert '%.2f%% accuracy' % (100 * meta['test_acc']) in text and 'exported ONNX graph' in text
    assert 'normalized per layer' in page.evaluate("document.getElementById('colour-scale').textContent")


def test_test_images_chosen_in_the_page_match_predict(page, samples, reference, tmp_path):
    paths = [png(tmp_path / ('%d.png' % i), np.asarray(p, np.uint8).reshape(28, 28))
             for i, p in zip(samples['indices'], samples['pixels'])]
    assert len(paths) >= 20
    x, probabilities = reference(paths)
    predicted = [p[0][0] for p in predict_files('lenet', [str(p) for p in paths], pretrained=True, k=1)]
    for k in range(len(paths)):
        click(page, '#sample-%d' % k)
        shown = settle(page)
        assert shown['last']['source'].startswith('test image %d,' % samples['indices'][k])
        check_shown(shown, x[k], probabilities[k], predicted[k], CLASSES)
    assert page.errors() == []
    # The network reads them: most shipped test images get their true class.
    assert np.mean(np.asarray(predicted) == np.asarray(samples['labels'])) >= 0.75


def draw(browser, image):
    """Draw ``image`` (28 x 28) on the page's 280 x 280 canvas with the mouse, 10 canvas pixels per
    image pixel: a stroke of the 20-pixel pen along each run of bright pixels of every other row
    (each event waits for a frame: half the rows, half the time)."""
    click(browser, '#clear')
    origin = browser.evaluate('''(() => { const c = document.getElementById('draw');
        document.getElementById('pen').value = 20; c.scrollIntoView({block: 'center'});
        const r = c.getBoundingClientRect(); return [r.x, r.y]; })()''')
    bright = image > 30          # the garment, not only its light parts
    for row in range(0, 28, 2):
        cols = np.flatnonzero(bright[row] | bright[row + 1])
        for run in np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1) if cols.size else []:
            y = origin[1] + 10 * row + 10
            browser.mouse('mousePressed', origin[0] + 10 * run[0] + 5, y)
            if run.size > 1:
                browser.mouse('mouseMoved', origin[0] + 10 * run[-1] + 5, y)
            browser.mouse('mouseReleased', origin[0] + 10 * run[-1] + 5, y)


def test_drawings_on_the_canvas_match_predict(page, samples, reference, tmp_path):
    labels = np.asarray(samples['labels'])
    chosen = [k for c in range(10) for k in np.flatnonzero(labels == c)[:DRAWN // 10]]
    shown, paths = [], []
    for k in chosen:
        draw(page, np.asarray(samples['pixels'][k], np.uint8).reshape(28, 28))
        shown.append(settle(page))
        assert shown[-1]['last']['source'] == 'your drawing'
        raw = page.evaluate('lenetPage.canvasPNG()').split(',', 1)[1]
        paths.append(tmp_path / ('drawing-%d.png' % k))
        paths[-1].write_bytes(base64.b64decode(raw))
    x, probabilities = reference(paths)
    predicted = [p[0][0] for p in predict_files('lenet', [str(p) for p in paths], pretrained=True, k=1)]
    for i in range(len(chosen)):
        check_shown(shown[i], x[i], probabilities[i], predicted[i], CLASSES)
    assert page.errors() == []


def test_an_upload_is_prepared_as_predict_prepares_it(page, samples, reference, tmp_path):
    """A photo-like upload, larger than 28 x 28 and not square, on a white background (inverted,
    trimmed, resized with Lanczos), one whose background is transparent, and a colour JPEG
    (Chromium's decoder and Pillow's agree on it; the page says they may not on every JPEG)."""
    from PIL import Image
    garment = 255 - np.asarray(samples['pixels'][3], np.uint8).reshape(28, 28)
    big = np.asarray(Image.fromarray(garment).resize((84, 84), Image.BICUBIC))
    canvas = np.full((130, 101, 3), 255, np.uint8)
    canvas[20:104, 9:93] = big[..., None]
    rgba = np.zeros((90, 120, 4), np.uint8)
    rgba[3:87, 20:104, :3] = big[..., None]
    rgba[3:87, 20:104, 3] = np.where(big < 250, 255, 0)
    tinted = canvas.copy()
    tinted[..., 0] = np.minimum(255, canvas[..., 0].astype(int) + 40)        # a colour photo, as a JPEG
    paths = [png(tmp_path / 'photo.png', canvas), png(tmp_path / 'cutout.png', rgba), tmp_path / 'photo.jpg']
    Image.fromarray(tinted).save(paths[2], quality=90)
    x, probabilities = reference(paths)
    predicted = [p[0][0] for p in predict_files('lenet', [str(p) for p in paths], pretrained=True, k=1)]
    for i, path in enumerate(paths):
        page.set_file('#upload', str(path))
        shown = settle(page)
        assert shown['last']['source'] == 'upload %s' % path.name
        check_shown(shown, x[i], probabilities[i], predicted[i], CLASSES)
    assert page.errors() == []


def huge_png(path, side=10000):
    """A valid grayscale PNG of ``side`` x ``side`` black pixels (a few hundred kB)."""
    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    packer, row, parts = zlib.compressobj(9), b'\0' * (side + 1), []
    for _ in range(side):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0))
                     + chunk(b'IDAT', b''.join(parts)) + chunk(b'IEND', b''))
    return path


def test_bad_input_gives_a_message_and_no_console_error(page, tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image\n')
    cases = [(notes, 'notes.txt is not an image this page reads: give a PNG, JPEG, GIF, WebP or BMP file.'),
             (huge_png(tmp_path / 'huge.png'), 'huge.png is a PNG of 10000 x 10000 = 100,000,000 pixels; this page '
                                               'decodes 1 to 16,777,216 (4096 x 4096): downscale it first.')]
    for path, message in cases:
        page.set_file('#upload', str(path))
        assert settle(page)['message'] == message
    click(page, '#clear')
    assert settle(page)['message'] == ('The canvas is empty: draw a garment on it (black on white), or pick a '
                                       'test image.')
    assert page.errors() == []


def test_a_screenshot_shows_the_maps(page):
    """Non-blank where the maps are; the whole view is the README's screenshot."""
    from PIL import Image
    click(page, '#sample-1')
    settle(page)
    # As a visitor first sees the controls: no file chosen, the pen at its default width.
    page.evaluate("document.getElementById('upload').value = ''; const pen = document.getElementById('pen');"
                  "pen.value = pen.defaultValue; window.scrollTo(0, 0)")
    box = page.evaluate('''(() => { const r = document.getElementById('view-conv0').getBoundingClientRect();
        const n = document.getElementById('display').getBoundingClientRect();
        return {maps: [r.x, r.y + scrollY, r.width, r.height], bottom: n.bottom + scrollY}; })()''')
    x, y, w, h = box['maps']
    maps = np.asarray(Image.open(io.BytesIO(page.screenshot({'x': x, 'y': y, 'width': w, 'height': h}))).convert('L'))
    # Six maps of 28 x 28 at three pixels each: many grey levels, dark and light.
    assert maps.shape == (round(h), round(w)) and len(np.unique(maps)) > 50 and maps.std() > 30
    shot = page.screenshot({'x': 0, 'y': 0, 'width': 1280, 'height': box['bottom'] + 8})
    # Rewritten only when it shows something else (PNG bytes may differ for the same pixels).
    if not SCREENSHOT.exists() or not np.array_equal(np.asarray(Image.open(SCREENSHOT).convert('RGB')),
                                                     np.asarray(Image.open(io.BytesIO(shot)).convert('RGB'))):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot)
    assert page.errors() == []


@pytest.mark.parametrize('fmt, options', [('PNG', {}), ('JPEG', {}), ('JPEG', {'progressive': True}), ('GIF', {}),
                                          ('BMP', {}), ('WEBP', {}), ('WEBP', {'lossless': True})])
def test_the_size_is_read_from_the_header_before_decoding(page, fmt, options):
    """The page's bound on pixels is checked on the size its header reader finds: Pillow's."""
    from PIL import Image
    out = io.BytesIO()
    mode = 'RGBA' if fmt == 'WEBP' and not options else 'RGB'    # an alpha WebP has the VP8X header
    Image.new(mode, (53, 37), (10, 200, 30, 128)[:len(mode)]).save(out, fmt, **options)
    size = page.evaluate('D2lPreprocess.imageSize(Uint8Array.from(atob(%r), c => c.charCodeAt(0)))'
                         % base64.b64encode(out.getvalue()).decode())
    assert (size['width'], size['height']) == Image.open(io.BytesIO(out.getvalue())).size == (53, 37)


def test_the_display_follows_the_pen_before_it_is_lifted(page):
    """While the button is held, each move is drawn and run (at most once a frame)."""
    click(page, '#sample-2')
    assert settle(page)['last']['source'].startswith('test image')
    click(page, '#clear')
    origin = page.evaluate('''(() => { const r = document.getElementById('draw').getBoundingClientRect();
        return [r.x, r.y]; })()''')
    page.mouse('mousePressed', origin[0] + 100, origin[1] + 40)
    answers = []
    for y in (80, 140, 200, 250):
        page.mouse('mouseMoved', origin[0] + 100 + y / 4, origin[1] + y)
        shown = settle(page)
        answers.append((shown['last']['source'], tuple(shown['last']['input'])))
    page.mouse('mouseReleased', origin[0] + 160, origin[1] + 250)
    assert all(source == 'your drawing' for source, _ in answers)
    assert len(set(x for _, x in answers)) == len(answers)          # a new input at each move
    assert page.errors() == []


def test_the_explain_page_shows_every_picture_the_build_drew(site):
    """Each figure of docs/explain.md loaded from the site (the build's PNG, at its size), shown on
    top at its aspect ratio within the window's width, and a screenshot of its place on the page is
    that picture, not a blank; no request fails (the theme fetches no fonts from outside)."""
    from PIL import Image
    with opened(site[1] + 'explain/index.html') as page:
        for name in EXPLAIN:
            # decode() settles once the image is loaded and decoded, and rejects if it cannot be.
            shown = page.evaluate('''(async () => { const img = document.getElementById('explain-%s');
                img.scrollIntoView({block: 'center'}); await img.decode();
                const r = img.getBoundingClientRect(), style = getComputedStyle(img);
                return {complete: img.complete, size: [img.naturalWidth, img.naturalHeight],
                        box: [r.x + scrollX, r.y + scrollY, r.width, r.height], page: innerWidth,
                        visible: style.display !== 'none' && style.visibility === 'visible' && style.opacity === '1'
                                 && document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === img};
            })()''' % name)
            drawn = Image.open(site[0] / 'generated' / ('explain-%s.png' % name)).convert('RGB')
            assert shown['complete'] and shown['visible'] and shown['size'] == list(drawn.size), (name, shown)
            x, y, w, h = shown['box']
            assert 200 < w and x + w <= shown['page'] and h > 100, (name, shown)
            assert abs(w / h - drawn.size[0] / drawn.size[1]) < 0.01 * drawn.size[0] / drawn.size[1], (name, shown)
            shot = Image.open(io.BytesIO(page.screenshot({'x': x, 'y': y, 'width': w, 'height': h},
                                                         beyond_viewport=False))).convert('RGB')
            pixels = np.asarray(shot)
            # As test_docs checks the files: many colours, most of the area not white.
            assert colours(pixels) > 200, name
            assert (pixels != 255).any(axis=2).mean() > 0.2, name
            # And this picture, in this place: the file scaled to the box, as the browser scales it,
            # within what resampling changes (4 to 8 levels of 255 on average; 20 pixels off, 68 to 89).
            scaled = np.asarray(drawn.resize(shot.size, Image.BOX), np.int16)
            assert np.abs(pixels - scaled).mean() < 15, name
        assert page.failed_requests() == []
        assert page.errors() == []
