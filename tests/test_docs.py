"""The documentation site builds in strict mode and documents the public API."""
import inspect
import os
import re
import subprocess
from pathlib import Path

import pytest

import d2lnets

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_strict(docs_site):
    proc, site = docs_site
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ('index.html', 'networks/vgg/index.html', 'cli/index.html', 'api/index.html'):
        assert (site / page).is_file(), page
    vgg = (site / 'networks/vgg/index.html').read_text()
    assert 'sequential5 output shape:' in vgg and 'vgg11.svg' in vgg
    assert (site / 'generated' / 'nin.svg').read_text().lstrip().startswith('<?xml')


def test_the_browser_page_is_built_with_its_model_and_runtime(docs_site):
    """The page, the model exported from the shipped weights, and onnxruntime-web as the lockfile
    pins it; nothing of npm's own files, and no address of a CDN in what the page loads."""
    import json
    proc, site = docs_site
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lock = json.loads((ROOT / 'docs' / 'browser' / 'package-lock.json').read_text())
    version = lock['packages']['node_modules/onnxruntime-web']['version']
    assert json.loads((ROOT / 'docs' / 'browser' / 'package.json').read_text())['dependencies'] == {
        'onnxruntime-web': version}
    generated = site / 'generated' / 'browser'
    model = json.loads((generated / 'model.json').read_text())
    assert model['onnxruntime_web'] == version
    from d2lnets.models.loading import pretrained_meta
    meta = pretrained_meta('lenet')
    assert model['weights'] == {k: meta[k] for k in ('file', 'sha1', 'test_acc', 'date')}
    assert sorted(os.listdir(generated / 'ort')) == ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm',
                                                     'ort.wasm.min.js']
    assert sorted(os.listdir(site / 'browser')) == ['app.js', 'index.html', 'preprocess.js', 'style.css']
    for name in ('index.html', 'app.js', 'preprocess.js', 'style.css'):
        text = (site / 'browser' / name).read_text()
        assert not re.search(r'https?://', text), '%s names an outside address' % name


# docs/explain.md's pictures: drawn by docs/hooks.py from the shipped LeNet, none committed.
EXPLAIN = ('activations', 'pullover-coat', 'filters', 'saliency', 'gradcam', 'mistakes')


def colours(pixels) -> int:
    """How many distinct colours an (H, W, 3) uint8 picture has (one integer per RGB colour)."""
    import numpy as np
    return len(np.unique(pixels.astype(np.int64) @ [1 << 16, 1 << 8, 1]))


def test_the_explain_page_shows_the_pictures_the_build_drew(docs_site):
    from PIL import Image
    proc, site = docs_site
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import numpy as np
    html = (site / 'explain' / 'index.html').read_text()
    for name in EXPLAIN:
        tag = re.search(r'<img [^>]*id="explain-%s"[^>]*>' % name, html)
        assert tag, name
        assert 'src="../generated/explain-%s.png"' % name in tag.group(0) and re.search(r'alt="[^"]{20,}"', tag.group(0))
        pixels = np.asarray(Image.open(site / 'generated' / ('explain-%s.png' % name)).convert('RGB'))
        # Not blank: a picture of many colours over most of its area.
        assert min(pixels.shape[:2]) > 300 and colours(pixels) > 200, name
        assert (pixels != 255).any(axis=2).mean() > 0.2, name
    tracked = subprocess.run(['git', 'ls-files', 'docs/generated'], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout == ''


def public_functions():
    for name in sorted(d2lnets._exports):
        yield name, getattr(d2lnets, name)


@pytest.mark.parametrize('name, obj', list(public_functions()))
def test_public_names_have_docstrings_and_are_in_the_api_reference(name, obj):
    assert inspect.getdoc(obj), '%s has no docstring' % name
    api = (ROOT / 'docs' / 'api.md').read_text()
    assert re.search(r'^::: d2lnets\.[\w.]+\.%s$' % name, api, re.M), '%s is missing from docs/api.md' % name


def test_every_builder_has_a_docstring():
    for name in d2lnets.list_models():
        assert inspect.getdoc(d2lnets.models.get_builder(name)), name
