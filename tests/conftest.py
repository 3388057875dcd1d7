import os
import subprocess
import sys
from pathlib import Path

import pytest

import d2lnets  # noqa: F401  (first: sets MXNet's process-wide defaults before mxnet is imported)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / 'golden'


def fold(text: str) -> list:
    """Lines with runs of whitespace folded to one space, blank lines dropped."""
    return [' '.join(line.split()) for line in text.splitlines() if line.strip()]


@pytest.fixture
def golden():
    def read(name):
        return fold((GOLDEN / (name + '.txt')).read_text())
    return read


@pytest.fixture(scope='session')
def docs_site(tmp_path_factory):
    """The documentation site, built once per test session as `make docs` builds it
    (``mkdocs build --strict``): ``(CompletedProcess, site folder)``. tests/test_docs.py
    checks the build, tests/test_browser.py drives its LeNet page."""
    site = tmp_path_factory.mktemp('docs') / 'site'
    mkdocs = Path(sys.executable).parent / 'mkdocs'
    env = dict(child_env(), NO_MKDOCS_2_WARNING='1')   # the hooks import this checkout's d2lnets
    proc = subprocess.run([str(mkdocs), 'build', '--strict', '--site-dir', str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    return proc, site


def child_env() -> dict:
    """The environment for a child process that imports d2lnets: this checkout's, whatever its cwd
    (a venv's installed copy may be another checkout's)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, PYTHONPATH=path)


@pytest.fixture
def run_cli():
    """Run ``python -m d2lnets ARGS`` in a fresh process; return the CompletedProcess."""
    def run(*args, **kwargs):
        env = dict(child_env(), **kwargs.pop('env', {}))
        return subprocess.run([sys.executable, '-m', 'd2lnets', *map(str, args)], cwd=kwargs.pop('cwd', ROOT),
                              env=env, capture_output=True, text=True, timeout=kwargs.pop('timeout', 300))
    return run


# --- data sets: IDX files made by the tests, and a real HTTP server on 127.0.0.1 ---

def idx_bytes(array) -> bytes:
    """``array`` (uint8) as an IDX file: magic 0x000008NN, big-endian dims, data."""
    import struct
    import numpy as np
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack('>HBB', 0, 8, array.ndim) + struct.pack('>%dI' % array.ndim, *array.shape) + array.tobytes()


def synthetic_split(count: int, seed: int):
    """``count`` 28x28 images whose label is drawn in them (a bright bar at a
    label-dependent row), so a network learns it within an epoch."""
    import numpy as np
    rng = np.random.RandomState(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = np.zeros((count, 28, 28), np.uint8)
    for k in range(10):
        images[labels == k, 2 + 2 * k:4 + 2 * k, 4:24] = 255
    return images, labels


@pytest.fixture(scope='session')
def mnist_files(tmp_path_factory):
    """A folder with the four gz files of an MNIST-shaped set (60,000 and
    10,000 examples) made here; returns (folder, {file name: array})."""
    import gzip
    folder = tmp_path_factory.mktemp('mnist-files')
    arrays = {}
    for prefix, count, seed in (('train', 60000, 0), ('t10k', 10000, 1)):
        images, labels = synthetic_split(count, seed)
        arrays[prefix + '-images-idx3-ubyte'], arrays[prefix + '-labels-idx1-ubyte'] = images, labels
    for name, array in arrays.items():
        (folder / (name + '.gz')).write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    return folder, arrays


class HTTPServers:
    """Real HTTP servers on 127.0.0.1, each serving a folder. Call it:
    ``serve(folder, drop_after=None, trickle=None) -> base URL``. With
    ``drop_after=N`` the server announces the full length, sends N bytes and
    closes the connection; with ``trickle=S`` it sends one byte every S seconds.
    ``requests`` lists the path of every GET, in order, over all servers."""

    def __init__(self):
        self.servers, self.requests = [], []

    def __call__(self, folder, drop_after=None, trickle=None) -> str:
        import functools
        import http.server
        import threading
        import time
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def copyfile(self, source, outputfile):
                if trickle is not None:
                    try:
                        for byte in iter(lambda: source.read(1), b''):
                            outputfile.write(byte)
                            outputfile.flush()
                            time.sleep(trickle)
                    except (BrokenPipeError, ConnectionResetError):
                        pass   # the client gave up, as it should
                    return
                if drop_after is None:
                    return super().copyfile(source, outputfile)
                outputfile.write(source.read(drop_after))
                outputfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                 functools.partial(Handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return 'http://127.0.0.1:%d/' % server.server_address[1]

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def http_server():
    """:class:`HTTPServers`: ``http_server(folder) -> base URL``, and
    ``http_server.requests``; the servers stop after the test."""
    servers = HTTPServers()
    yield servers
    servers.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private HOME and MXNET_HOME, so no test reads or writes the user's
    model cache; returns MXNet's models folder in it (not created)."""
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet'))
    return tmp_path / 'mxnet' / 'models'


def make_picture(path, height=300, width=400):
    """Write a smooth RGB test picture (colour ramps) as ``path`` (by its
    extension) with OpenCV; return it as (height, width, 3) uint8 RGB."""
    import cv2
    import numpy as np
    rng = np.random.RandomState(0)
    rgb = (np.linspace(0, 255, width)[None, :, None] * rng.uniform(0.3, 1, (height, 1, 3))).astype('uint8')
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return rgb


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """An environment where the data locator finds nothing by itself: empty
    $MXNET_HOME, no $D2LNETS_DATA, no Debian folder, no repository set."""
    import d2lnets.data as data
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet-home'))
    monkeypatch.delenv('D2LNETS_DATA', raising=False)
    monkeypatch.delenv('MXNET_GLUON_REPO', raising=False)
    monkeypatch.setattr(data, 'DEBIAN_DIR', str(tmp_path / 'no-debian'))
    return tmp_path
