"""Every download ends and is bounded, and a server's bad answer is one line
naming the server and the file (issue 19, principles 4 and 5). Real HTTP
servers on 127.0.0.1."""
import hashlib
import http.server
import inspect
import os
import threading
import zipfile

import pytest

from d2lnets import io
from d2lnets.weights import zoo


@pytest.fixture
def odd_server():
    """A server on 127.0.0.1 with hostile answers: ``/loop`` redirects to
    itself, ``/huge`` announces 10 GB, ``/endless`` sends without a length."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == '/loop':
                self.send_response(302)
                self.send_header('Location', '/loop')
                self.end_headers()
            elif self.path == '/huge':
                self.send_response(200)
                self.send_header('Content-Length', str(10 ** 10))
                self.end_headers()
                self.wfile.write(b'x' * 1000)
            elif self.path == '/endless':
                self.send_response(200)
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b'x' * 65536)
                except OSError:
                    pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d/' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_every_download_has_a_deadline_and_a_size_limit_by_default():
    defaults = {name: p.default for name, p in inspect.signature(io.download).parameters.items()}
    assert defaults['deadline'] == io.DOWNLOAD_DEADLINE == 3600.0
    assert defaults['max_bytes'] == io.MAX_DOWNLOAD_BYTES == 4 << 30


def test_a_redirect_loop_is_one_line(tmp_path, odd_server):
    with pytest.raises(OSError) as info:
        io.download(odd_server + 'loop', tmp_path / 'f.bin', progress=False)
    assert str(info.value) == ('could not download %sloop: HTTP 302: the server redirects in a loop or too often '
                               '(more than 10 times)' % odd_server)
    assert os.listdir(tmp_path) == []


def test_an_announced_size_over_the_limit_is_refused_before_anything_is_written(tmp_path, odd_server):
    with pytest.raises(OSError, match='the server announces 10000000000 bytes, more than the 4294967296 accepted'):
        io.download(odd_server + 'huge', tmp_path / 'f.bin', progress=False)
    assert os.listdir(tmp_path) == []


def test_a_server_that_never_stops_is_cut_at_the_limit(tmp_path, odd_server):
    with pytest.raises(OSError, match='the server sent more than the 1000000 bytes accepted'):
        io.download(odd_server + 'endless', tmp_path / 'f.bin', progress=False, max_bytes=10 ** 6)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def mirror(tmp_path, monkeypatch, http_server):
    """A GluonCV mirror on 127.0.0.1 (``MXNET_GLUON_REPO``): (its URL, its models folder)."""
    served = tmp_path / 'served'
    (served / 'gluon' / 'models').mkdir(parents=True)
    url = http_server(served).rstrip('/')
    monkeypatch.setenv('MXNET_GLUON_REPO', url)
    return url, served / 'gluon' / 'models'


def zip_as_gluoncv(models_dir, gname, payload: bytes):
    fname = zoo.file_name(gname)
    with zipfile.ZipFile(models_dir / (fname[:-len('.params')] + '.zip'), 'w', zipfile.ZIP_STORED) as zf:
        zf.writestr(fname, payload)
    return fname


def test_a_mirrors_wrong_file_names_the_server_and_the_file(tmp_path, mirror):
    url, models_dir = mirror
    fname = zip_as_gluoncv(models_dir, 'vgg11', b'not the weights')
    with pytest.raises(ValueError) as info:
        zoo.download_weights('vgg11', tmp_path / 'cache')
    message = str(info.value)
    assert message.startswith('%s in %s/gluon/models/%s.zip (from 127.0.0.1:' % (fname, url, fname[:-7]))
    assert 'has sha1 %s, but GluonCV publishes' % hashlib.sha1(b'not the weights').hexdigest() \
        in message
    # No temporary is named, and none is left.
    assert '.tmp' not in message and '.part' not in message
    assert not (tmp_path / 'cache').exists() or os.listdir(tmp_path / 'cache') == []


def test_a_zip_member_declaring_more_than_any_weights_is_refused_unread(tmp_path, mirror, monkeypatch):
    url, models_dir = mirror
    monkeypatch.setattr(zoo, 'MAX_PARAMS_BYTES', 1000)
    zip_as_gluoncv(models_dir, 'vgg11', b'x' * 1001)
    with pytest.raises(ValueError, match='unpacks to 1001 bytes, more than the 1000 any GluonCV weights take'):
        zoo.download_weights('vgg11', tmp_path / 'cache')
    assert os.listdir(tmp_path / 'cache') == []
