"""Print the accuracy table (markdown) from benchmarks/results/accuracy.jsonl.

    python benchmarks/report.py
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


if __name__ == '__main__':
    main()
