"""`d2lnets info` (d2lnets/sysinfo.py): what a student reports when something is
slow or missing, as text and as JSON, from the real machine and real folders."""
import json

from d2lnets.perf import kernels_build
from d2lnets import sysinfo


def test_info_text_names_every_part(run_cli, tmp_path):
    models = tmp_path / 'mxhome' / 'models'
    models.mkdir(parents=True)
    (models / 'vgg11-dd221b16.params').write_bytes(b'\0' * 2 ** 20)
    proc = run_cli('info', env={'MXNET_HOME': str(tmp_path / 'mxhome')})
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr
    lines = dict(l.split(':', 1) for l in proc.stdout.splitlines() if not l.startswith(' '))
    assert list(lines) == ['d2lnets', 'MXNet', 'Python', 'CPU', 'cores', 'engine', 'fused kernels', 'GPUs',
                           'Fashion-MNIST', 'GluonCV weights']
    assert lines['MXNet'].split()[0] == '1.9.1'
    assert lines['CPU'].strip() == '%s (%s)' % (sysinfo.cpu_model(), kernels_build.instruction_set())
    assert 'OpenMP threads' in lines['cores']
    assert str(models) in lines['GluonCV weights'] and 'vgg11-dd221b16.params (1.0 MB)' in proc.stdout
    if kernels_build.runnable_variants():
        assert lines['fused kernels'].split()[0] == kernels_build.best_variant()


def test_info_json_and_what_is_missing(run_cli, tmp_path, monkeypatch, capsys):
    env = {'MXNET_HOME': str(tmp_path / 'none'), 'D2LNETS_FUSED': '0', 'CXX': str(tmp_path / 'no-cxx')}
    proc = run_cli('info', '--json', env=env)
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr
    info = json.loads(proc.stdout)
    assert info['mxnet'] == '1.9.1' and info['gpus'] == 0
    assert info['cpu']['usable'] >= 1 and info['cpu']['omp_threads'] >= 1
    assert info['cpu']['kernel_variants'] == kernels_build.runnable_variants()
    assert info['fused']['mode'] == '0'
    assert info['gluoncv_cache'][0] == {'folder': str(tmp_path / 'none' / 'models'), 'exists': False, 'files': []}
    # The text form through cli.main in this process, as the process runs it, in the same environment.
    from d2lnets import cli
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(['info']) == 0
    text = capsys.readouterr().out
    assert "fused kernels:   MXNet's layers: " in text
    assert 'no such folder' in text


def test_info_says_why_there_are_no_fused_kernels(run_cli, tmp_path):
    proc = run_cli('info', env={'CXX': str(tmp_path / 'no-cxx'), 'D2LNETS_CACHE': str(tmp_path / 'cache')})
    assert proc.returncode == 0, proc.stderr
    line = [l for l in proc.stdout.splitlines() if l.startswith('fused kernels:')][0]
    if kernels_build.runnable_variants():
        assert 'no C++ compiler' in line
    else:
        assert 'no AVX2' in line
    assert not (tmp_path / 'cache').exists()  # info builds nothing


def test_info_on_a_bad_switch_says_what_to_set(run_cli):
    proc = run_cli('info', env={'D2LNETS_FUSED': 'fast'})
    assert proc.returncode == 0
    assert 'D2LNETS_FUSED must be 0, 1 or auto' in proc.stdout
