"""The environment read defensively (issue 19, principle 6): a value MXNet would
abort or hang on is corrected, with one warning line, before mxnet is imported."""
import os
import subprocess
import sys

import pytest

# A real forward pass in a fresh process: MXNet reads the variables when it loads.
FORWARD = ("import d2lnets, mxnet as mx; net = d2lnets.get_model('lenet'); net.initialize(); "
           "print(net(mx.nd.ones((2, 1, 28, 28))).shape)")


def forward(**env):
    return subprocess.run([sys.executable, '-c', FORWARD], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env))


@pytest.mark.parametrize('value', ['abc', '4,2', '', '２', '100000'])
def test_bad_omp_num_threads_is_corrected_with_one_warning(value):
    proc = forward(OMP_NUM_THREADS=value)
    assert proc.returncode == 0 and proc.stdout.strip() == '(2, 10)', proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "d2lnets:0: EnvironmentWarning: OMP_NUM_THREADS=%r is not a whole number of threads from 1 to 1024; "
        "d2lnets uses %d instead (set it so, or unset it)" % (value, len(os.sched_getaffinity(0)))]


def test_mxnet_variables_that_abort_are_removed_and_info_runs():
    env = dict(os.environ, MXNET_MKLDNN_ENABLED='abc', MXNET_OMP_MAX_THREADS='abc', MXNET_ENGINE_TYPE='bad',
               MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN='abc', MXNET_CPU_WORKER_NTHREADS='0')
    proc = subprocess.run([sys.executable, '-m', 'd2lnets', 'info'], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0 and 'NaiveEngine' in proc.stdout, proc.stderr
    warned = [line.split(': ', 2)[2].split('=')[0] for line in proc.stderr.strip().splitlines()]
    assert warned == ['MXNET_ENGINE_TYPE', 'MXNET_CPU_WORKER_NTHREADS', 'MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN',
                      'MXNET_OMP_MAX_THREADS', 'MXNET_MKLDNN_ENABLED']
