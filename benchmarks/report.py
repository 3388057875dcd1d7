"""Print the accuracy tables (markdown) from benchmarks/results/accuracy.jsonl,
and LeNet's distribution over seeds beside the lecture's own code's
(benchmarks/results/lecture_loop.jsonl).

    python -m benchmarks.report
"""
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    rows = [json.loads(line) for line in (HERE / 'results' / 'accuracy.jsonl').read_text().splitlines() if line]
    print('| model | seed | batch | lr | resize | train examples | epochs | test acc @5 | test acc @10 '
          '| last | s/epoch (median) | examples/s (median) | note |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        acc = r['test_acc']
        print('| %s | %d | %d | %g | %s | %s | %d | %s | %s | %.3f | %.1f | %.0f | %s |' % (
            r['model'], r['seed'], r['recipe']['batch_size'], r['recipe']['lr'], r['resize'] or 28,
            r['recipe']['limit'] or 60000, r['epochs'], '%.3f' % acc[4] if len(acc) >= 5 else '-',
            '%.3f' % acc[9] if len(acc) >= 10 else '-', acc[-1], statistics.median(r['seconds']),
            statistics.median(r['examples_per_sec']), r.get('note', '')))


    summary()


def _stats(accs):
    mean = statistics.mean(accs)
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return '%.3f +- %.3f' % (mean, sd)


def summary() -> None:
    """LeNet, 10 epochs of the lecture's recipe: the latest full run per seed."""
    latest = {}
    for line in (HERE / 'results' / 'accuracy.jsonl').read_text().splitlines():
        r = json.loads(line) if line else None
        if r and r['model'] == 'lenet' and len(r['test_acc']) >= 10 and not r['recipe']['limit']:
            latest[r['seed']] = r
    lecture = [json.loads(line) for line in (HERE / 'results' / 'lecture_loop.jsonl').read_text().splitlines()
               if line]
    print('\n| LeNet, lecture recipe | seeds | test acc @5 (mean +- sd) | runs >= 0.762 '
          '| test acc @10 (mean +- sd) | runs >= 0.825 |')
    print('|---|---|---|---|---|---|')
    for name, runs in (('d2lnets', list(latest.values())), ("the lecture's notebook code", lecture)):
        at5 = [r['test_acc'][4] for r in runs]
        at10 = [r['test_acc'][9] for r in runs]
        print('| %s | %s | %s | %d of %d | %s | %d of %d |' % (
            name, ', '.join(str(r['seed']) for r in sorted(runs, key=lambda r: r['seed'])), _stats(at5),
            sum(a >= 0.762 for a in at5), len(at5), _stats(at10), sum(a >= 0.825 for a in at10), len(at10)))


if __name__ == '__main__':
    main()
