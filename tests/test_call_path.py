"""The call path of `d2lnets predict lenet --pretrained` (issue 20, point 1), as
scripts/call_path.py measures it: it climbs back up the layering at most 3
times, the modules of the weights path and every other module the flow passes
through are each entered at most twice, and the helpers it enters (modules that
call no other d2lnets module) no more often than measured.
benchmarks/results/call_path.txt holds the figures before and after."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# On fb36757: 5 climbs (weights.zoo->weights.load 3, weights->weights.shipped 1,
# weights.load->weights.zoo 1) and weights.load entered 4 times.
MAX_CLIMBS = 3
MAX_ENTRIES = 2
LOADING = ('models.loading', 'weights.load', 'weights.zoo', 'weights.shipped')
# The helpers (modules the path enters that call no other d2lnets module: scripts/call_path.py) entered more
# than twice, at most as often as measured on 2026-12-07: limits 6 (deploy.predict's top-k, weights.meta's table
# of numbers (limits.misfits) and its input shape's bounds (check_shape), the builders' table
# (models._checks.check_arguments), models.summary's input shape and each layer's elements) and io 5
# (runtime's core count, weights.shipped's sha1, perf.kernels_build's CPU flags and record, perf.choice's CPU
# model). Each is many modules' one way to do a thing (issue 20: "one validation helper"): before the hand
# checks of numbers went through limits (main 57f2cd1), the path did not enter it at all. The goal of at most
# two entries holds for the flow's modules, those it passes through.
OVER = {'io': 5, 'limits': 6}


@pytest.fixture(scope='module')
def figures(tmp_path_factory):
    image = tmp_path_factory.mktemp('img') / 'bag.png'
    Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)).save(str(image))
    out = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'call_path.py'), '--warm', 'predict', 'lenet',
                          '--pretrained', str(image)], cwd=str(ROOT), capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(': ', 1) for line in out.stdout.splitlines() if ': ' in line and not line[0].isspace())
    return lines, _counts(lines['entries by module']), _counts(lines['helpers'])


def _counts(text):
    # 'limits 6, io 5' -> {'limits': 6, 'io': 5}
    return {m: int(n) for m, n in (item.rsplit(' ', 1) for item in text.split(', '))}


def test_predict_climbs_back_up_the_layering_at_most_three_times(figures):
    lines, _, _ = figures
    assert int(lines['climbs']) <= MAX_CLIMBS, lines['climbs by pair']


def test_the_weights_path_enters_each_of_its_modules_at_most_twice(figures):
    _, entries, _ = figures
    assert {'models.loading', 'weights.load', 'weights.shipped'} <= set(entries)
    assert {m: entries[m] for m in LOADING if entries.get(m, 0) > MAX_ENTRIES} == {}


def test_no_helper_is_entered_more_often_than_measured(figures):
    _, _, helpers = figures
    assert {'io', 'limits'} <= set(helpers)
    assert {m: n for m, n in helpers.items() if n > MAX_ENTRIES and n > OVER.get(m, 0)} == {}


def test_every_module_the_flow_passes_through_is_entered_at_most_twice(figures):
    # On 6a8ca50 the package weights was entered 4 times: preprocessing (deploy.predict), categories
    # (models.get_model), path (weights.load), meta (models.loading); its data set's row is now resolved once.
    lines, entries, helpers = figures
    flow = {m: n for m, n in entries.items() if m not in helpers}
    assert {'cli', 'deploy.predict', 'models.loading', 'weights', 'weights.meta', 'perf.fused'} <= set(flow)
    assert {m: n for m, n in flow.items() if n > MAX_ENTRIES} == {}
    assert lines['most entries of a flow module'].endswith('(%d)' % max(flow.values()))
