"""Library errors speak in the library's terms (issue 20, point 5): a message
raised in d2lnets/ names an argument as ```out``` or ```out=VALUE```, never a
command-line option; the CLI alone turns them into its options (cli.OPTIONS)."""
import ast
import re
from pathlib import Path

import pytest

from d2lnets.cli import OPTIONS, cli_words

ROOT = Path(__file__).resolve().parent.parent
# The CLI's own words; launch's checks are those of `d2lnets launch`'s options (-n, -s, --port).
OWN_WORDS = {'d2lnets/cli.py'}
LAUNCH = 'd2lnets/training/launch/'
FLAG = re.compile(r'(?<![\w`-])--(%s)\b' % '|'.join(sorted({o[2:] for o in OPTIONS.values()} | {'resume'})))
# A command line the library suggests running (`d2lnets launch ... -- d2lnets train ... --kvstore X`)
# holds options as the program takes them: that is a command, not an argument of the caller's.
COMMAND = re.compile(r'`d2lnets [^`]*`')


def _strings(path: Path):
    """(line, text) of every string constant that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_library_message_names_a_command_line_option():
    found = []
    for path in sorted((ROOT / 'd2lnets').rglob('*.py')):
        name = str(path.relative_to(ROOT))
        if name in OWN_WORDS or name.startswith(LAUNCH):
            continue
        for line, text in _strings(path):
            if FLAG.search(COMMAND.sub('', text)):
                found.append('%s:%d: %r' % (name, line, text))
    assert not found, 'name the argument (`out`, `params=FILE`); cli.OPTIONS gives its option:\n' + '\n'.join(found)


@pytest.mark.parametrize('library, cli', [
    ('start a new run with another `out`', 'start a new run with another --out'),
    ('(`batch_size`, `resize`): x', '(--batch-size, --resize): x'),
    ('say which weights to use: `pretrained=True`, `params=FILE` or `onnx=FILE` (one of them)',
     'say which weights to use: --pretrained, --params FILE or --onnx FILE (one of them)'),
    ('/r already holds a run; continue it with `resume_run(run_dir=/r (1))`, or choose another `out`',
     '/r already holds a run; continue it with --resume /r (1), or choose another --out'),
    ('start it again with `train_run(NAME, out=/tmp/a b)`', 'start it again with `d2lnets train NAME --out /tmp/a b`'),
    ('`kvstore=dist_sync` needs a parameter-server job: start it with `d2lnets launch -n WORKERS -- d2lnets train '
     '... --kvstore dist_sync`', '--kvstore dist_sync needs a parameter-server job: start it with `d2lnets launch '
     '-n WORKERS -- d2lnets train ... --kvstore dist_sync`'),
    ('give `epochs=3` or more', 'give --epochs 3 or more'),
    ('the batch size (`batch_size`) must be an integer from 1 to 65536, got 0',
     'the batch size (--batch-size) must be an integer from 1 to 65536, got 0'),
    ('the number of classes to show (`k`) must be', 'the number of classes to show (--top) must be'),
    ('the length of one timed run in seconds (`seconds_per_run`)',
     'the length of one timed run in seconds (--seconds)'),
    ('/x/model is a folder; give `prefix` a path', '/x/model is a folder; give --out a path'),
    # Not an argument of the table: left as it is.
    ('see `d2lnets list` and `outs` and out= and `root`', 'see `d2lnets list` and `outs` and out= and `root`'),
])
def test_the_cli_gives_each_argument_its_option(library, cli):
    assert cli_words(library) == cli


def test_a_resize_too_large_asks_for_a_smaller_one():
    from d2lnets.training.runs import _check_input, run_config
    with pytest.raises(ValueError, match=r'^vgg11 cannot take 4096x4096 input: dense0 \(Dense\), .*; '
                                         r'use a smaller `resize` \(the recipe: 224\)$'):
        _check_input(run_config('vgg11', resize=4096, batch_size=1))
    with pytest.raises(ValueError, match=r'^alexnet cannot take 8x8 input: conv0 \(Conv2D\) cannot take input of '
                                         r'shape \(1, 1, 8, 8\): kernel size exceed input; use a larger `resize` '
                                         r'\(the recipe: 224\)$'):
        _check_input(run_config('alexnet', resize=8, batch_size=1))


def test_every_bound_has_its_option():
    from d2lnets import limits
    library_only = {'num_epochs', 'warmup'}       # train(num_epochs=0), bench(warmup=): no option gives them
    assert {b.argument for b in limits.BOUNDS.values()} - library_only <= set(OPTIONS)
    assert all(b.argument in library_only for b in limits.BOUNDS.values() if b.argument not in OPTIONS)


def test_the_cli_says_it_with_its_option(run_cli):
    out = run_cli('train', 'alexnet', '--resize', '8', '--epochs', '1')
    assert out.returncode == 1 and out.stdout == ''
    assert out.stderr.splitlines() == [
        'd2lnets train: error: alexnet cannot take 8x8 input: conv0 (Conv2D) cannot take input of shape (1, 1, 8, 8): '
        'kernel size exceed input; use a larger --resize (the recipe: 224)']
