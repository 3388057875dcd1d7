"""No function of d2lnets takes more than 8 parameters (issue 20, "one value per run"):
a run's settings travel as one RunConfig, the rest as hooks; a launch's as one
launch.Job. At most three public entry points keep keyword options for the library's
users, none more than 12, and each turns them into its one value (a RunConfig, or a
bench's BenchConfig) at once (docs/architecture.md says why these)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOST = 8
# The public entry points that keep keyword options, and the most each may take: the three
# calls the library's users write with keywords, as the lecture and the docs show them.
ENTRY_POINTS = {
    'd2lnets/training/loop.py:train': 12,        # the lecture's train(net, train_iter, test_iter, num_epochs, lr, ...)
    'd2lnets/training/runs.py:train_run': 12,    # a registered model into a run folder (benchmarks/accuracy.py)
    # bench('lenet', 'infer', batch_size=1, runs=3): `d2lnets bench` and benchmarks/compare_pytorch.py call it
    # with keywords; its options are one measurement's (a BenchConfig), none of a run's, and nothing keeps them.
    'd2lnets/perf/bench.py:bench': 11,
}
# The values the entry points turn their options into, first thing.
BUILDERS = ('RunConfig', 'run_config', 'BenchConfig')


def counts():
    """``{'path:function': parameters}`` for every function and method in d2lnets/
    (``self`` and ``cls`` not counted; ``*args`` and ``**kwargs`` one each)."""
    found = {}
    for path in sorted((ROOT / 'd2lnets').rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
                n = len([x for x in names if x not in ('self', 'cls')])
                key = '%s:%s' % (path.relative_to(ROOT).as_posix(), node.name)
                found[key] = max(n, found.get(key, 0))
    return found


def test_no_function_takes_more_than_eight_parameters():
    over = {k: n for k, n in counts().items() if n > MOST and k not in ENTRY_POINTS}
    assert over == {}


def test_at_most_three_entry_points_keep_at_most_twelve():
    found = counts()
    assert len(ENTRY_POINTS) <= 3 and all(n <= 12 for n in ENTRY_POINTS.values())
    for key, most in ENTRY_POINTS.items():
        assert key in found, key        # a function renamed or moved: update the table
        assert found[key] <= most, (key, found[key])


def test_the_entry_points_turn_their_options_into_a_run_configuration():
    """Each entry point's body builds its value (RunConfig(...), run_config(...), BenchConfig(...)) before
    anything else."""
    for key in ENTRY_POINTS:
        path, name = key.split(':')
        tree = ast.parse((ROOT / path).read_text())
        func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
        body = [s for s in func.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        calls = [n.func for s in body[:2] for n in ast.walk(s) if isinstance(n, ast.Call)]
        assert any(getattr(f, 'id', None) in BUILDERS for f in calls), key


def test_the_counts_of_the_old_loop_are_gone():
    found = counts()
    assert found['d2lnets/training/loop.py:train'] == 12        # was 19
    assert found['d2lnets/training/runs.py:train_run'] == 12    # was 15
    assert found['d2lnets/training/loop.py:__init__'] <= MOST   # _EpochLoop's was 13
    assert found['d2lnets/training/runs.py:_fit'] <= MOST       # was 10


def test_a_launch_takes_its_settings_as_one_job():
    found = counts()
    assert found['d2lnets/training/launch/hosts.py:launch_hosts'] == 4      # was 12: job, hosts, out, parse_args
    assert found['d2lnets/training/launch/local.py:launch'] == 3            # was 9: job, out, parse_args
