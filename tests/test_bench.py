"""The benchmark's structure on tiny runs (speed is measured in benchmarks/, not here)."""
import json
import os
import subprocess
import sys

import pytest

from d2lnets.perf import kernels_build
from d2lnets.perf.bench import bench, format_results, matmul_peak, peak_rss_mb


def test_matmul_peak_is_a_rate_this_machine_can_reach():
    import time
    import mxnet as mx
    from d2lnets.io import usable_cores
    n = 128
    peak = matmul_peak(n=n, seconds=0.05)
    # No CPU here does more than 2 FMA units x 16 float lanes x 2 FLOPs per cycle per core at 6 GHz.
    assert 0 < peak <= usable_cores() * 64 * 6e9 / 1e9
    # The best of several runs: never below one product timed by hand (with room for the machine's noise).
    a = mx.nd.ones((n, n))
    mx.nd.FullyConnected(a, a, no_bias=True, num_hidden=n).wait_to_read()
    t = time.perf_counter()
    mx.nd.FullyConnected(a, a, no_bias=True, num_hidden=n).wait_to_read()
    assert peak >= 0.2 * 2 * n ** 3 / (time.perf_counter() - t) / 1e9


@pytest.mark.parametrize('mode, hybridize', [('train', True), ('infer', False), ('infer', True)])
def test_tiny_bench(mode, hybridize, monkeypatch):
    monkeypatch.setenv('D2LNETS_FUSED', '1')  # no timing choice at this tiny batch
    r = bench('lenet', mode, batch_size=8, hybridize=hybridize, runs=3, seconds_per_run=0.02, warmup=1,
              peak=100.0)
    assert (r.name, r.mode, r.batch_size, r.hybridized) == ('lenet', mode, 8, hybridize)
    assert r.input_shape == [8, 1, 28, 28] and len(r.runs) == 3 and r.steps_per_run >= 1
    assert min(r.runs) <= r.images_per_sec <= max(r.runs)
    # FLOPs from the complexity counts: 2 x 416,520 MACs per image forward, 3x that to train.
    assert r.gflops_per_image == pytest.approx((3 if mode == 'train' else 1) * 2 * 416520 / 1e9)
    assert r.gflops_per_sec == pytest.approx(r.images_per_sec * r.gflops_per_image)
    assert r.percent_of_peak == pytest.approx(r.gflops_per_sec)    # of a 100 GFLOP/s peak
    assert 0 < r.peak_rss_mb <= peak_rss_mb() + 1
    assert r.settings['MXNET_ENGINE_TYPE'] == 'NaiveEngine'
    # The hybridized network runs through the fused operator, as d2lnets.train and evaluate do.
    assert r.fused == hybridize
    table = format_results([r]).splitlines()
    assert table[0].split()[:4] == ['network', 'mode', 'batch', 'images/s']
    assert table[2].startswith('CPU: ') and table[2].endswith('(%s)' % kernels_build.instruction_set())
    if r.fused:
        assert table[1].split()[:3] == ['lenet', mode, '(fused)']
        variant = kernels_build.best_variant()
        assert table[3] == 'lenet %s blocks: conv0: %s, conv1: %s' % (mode, variant, variant)
    else:
        assert table[3] == "lenet %s blocks: MXNet's layers" % mode


def test_bench_can_train_through_mxnets_own_layers():
    r = bench('lenet', 'train', batch_size=8, runs=3, seconds_per_run=0.02, warmup=1, fuse=False)
    assert not r.fused and "lenet train blocks: MXNet's layers" in format_results([r])
    assert r.images_per_sec == sorted(r.runs)[1]       # the median of the three runs
    assert r.gflops_per_sec == pytest.approx(r.images_per_sec * 3 * 2 * 416520 / 1e9)


def test_bench_rejects_bad_arguments():
    with pytest.raises(ValueError, match='mode must be one of train, infer'):
        bench('lenet', 'fit')
    with pytest.raises(ValueError, match=r'the batch size \(`batch_size`\) must be an integer from 1 to 65536, got 0'):
        bench('lenet', batch_size=0)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        bench('resnet')


def test_cli_bench_json(run_cli, capsys):
    proc = run_cli('bench', 'lenet', '--mode', 'infer', '--batch-size', '4', '--runs', '1', '--seconds', '0.02',
                   '--json')
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result['name'] == 'lenet' and result['batch_size'] == 4 and result['input_shape'] == [4, 1, 28, 28]
    # What a correct bench prints: the rate times the counted FLOPs, and its share of the measured peak.
    assert result['gflops_per_image'] == pytest.approx(2 * 416520 / 1e9)
    assert result['gflops_per_sec'] == pytest.approx(result['images_per_sec'] * result['gflops_per_image'])
    assert result['percent_of_peak'] == pytest.approx(100 * result['gflops_per_sec'] / result['peak_gflops_per_sec'])
    assert result['images_per_sec'] in result['runs']
    # The unknown name through cli.main in this process, as the process runs it (each process loads MXNet).
    from d2lnets import cli
    assert cli.main(['bench', 'resnet']) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_default_engine_and_spin_count_are_set_and_quiet():
    env = {k: v for k, v in os.environ.items() if k not in ('MXNET_ENGINE_TYPE', 'GOMP_SPINCOUNT')}
    code = ("import os, d2lnets; from d2lnets import nn; import mxnet as mx; mx.nd.ones(1).asnumpy(); "
            "print(os.environ['MXNET_ENGINE_TYPE'], os.environ['GOMP_SPINCOUNT'])")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert proc.stdout.split() == ['NaiveEngine', '1000'] and proc.stderr == ''
    # The user's choice is kept (and MXNet then says which engine it uses, as it always does).
    env['MXNET_ENGINE_TYPE'] = 'ThreadedEnginePerDevice'
    env['GOMP_SPINCOUNT'] = '300000'
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert proc.stdout.split() == ['ThreadedEnginePerDevice', '300000']
