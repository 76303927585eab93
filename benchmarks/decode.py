"""Time to the first training batch of an image folder: the book's decode loop against
d2l_dcgan's, cold (decoding, N worker processes) and warm (the decoded-image cache), with peak
memory of one run and of four runs started at once.

    python benchmarks/decode.py --data-dir DIR [--repeats 3] [--json benchmarks/decode.json]

Each measurement runs in a fresh process, imports not timed; the variants alternate within each
repeat and the medians are reported. For real images, the npm packages emoji-datasource-google,
-apple, -twitter and -facebook hold ~3,800 64x64 PNGs each (`npm pack NAME`,
package/img/NAME/64/): one class folder each, copied to reach the size wanted."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# each variant: code run after the imports, with DATA, CACHE, WORKERS set; it prints its seconds
SETUP = """
import os, sys, time, resource
import d2l_dcgan
import mxnet as mx
from d2l_dcgan.data import array_loader, list_images, read_images
DATA, CACHE, WORKERS = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
start = time.perf_counter()
"""
VARIANTS = {
    # the chapter's decode, as the book's ImageFolderDataset + Resize would: one process
    'book': """
items, _ = list_images(DATA)
images = [mx.image.imresize(mx.image.imread(p), 64, 64).asnumpy() for p, _ in items]
""",
    'ours': """
images, labels, _ = read_images(DATA, cache_dir=CACHE, workers=WORKERS)
X, y = next(iter(array_loader(images, labels, batch_size=256)))
X.wait_to_read()
""",
}
REPORT = """
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({'seconds': seconds, 'peak_mb': peak_mb, 'images': len(images)}))
"""


def measure(variant, data, cache='', workers=1):
    code = SETUP.replace('import os,', 'import json, os,') + VARIANTS[variant] + REPORT
    r = subprocess.run([sys.executable, '-c', code, data, cache, str(workers)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def four_at_once(data, cache):
    """Four 'ours' processes started together on a cold cache: their results and the
    system's memory taken at the peak (MemAvailable before minus its lowest during)."""
    code = SETUP.replace('import os,', 'import json, os,') + VARIANTS['ours'] + \
        'time.sleep(2)\n' + REPORT  # hold the mapping while the others load
    avail = lambda: int(next(l.split()[1] for l in open('/proc/meminfo')  # noqa: E731
                             if l.startswith('MemAvailable'))) / 1024
    before, lowest = avail(), avail()
    runs = [subprocess.Popen([sys.executable, '-c', code, data, cache, '0'], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)]
    while any(r.poll() is None for r in runs):
        lowest = min(lowest, avail())
        time.sleep(0.05)
    outs = [json.loads(r.communicate()[0].strip().splitlines()[-1]) for r in runs]
    return outs, before - lowest


LABELS = {'book': "the book's loop, one process", 'cold, cached':
          'd2l_dcgan, cold: decoding into the cache ({cores} processes)',
          'warm': 'd2l_dcgan, warm: mapping the cache'}


def print_table(result):
    """The medians as docs/speed.md holds them (tests/test_docs.py compares them)."""
    book, cores = result['median_seconds']['book'], result['cores']
    repeats = len(result['per_repeat']['book'])
    print(f"{result['images']:,} images, {cores} cores, medians of {repeats} "
          f"(benchmarks/decode.json)")
    print()
    print("| path to the first batch | seconds | / the book's loop | images/s |")
    print('| --- | --- | --- | --- |')
    for k, v in result['median_seconds'].items():
        n = k.split()[1] if 'process' in k else None  # 'cold, 2 process(es)'
        name = (LABELS[k] if n is None else
                f"d2l_dcgan, no cache, {n} process{'' if n == '1' else 'es'}").format(cores=cores)
        print(f"| {name} | {v:.2f} | {v / book:.2f} | {result['images'] / v:,.0f} |")
    four = result['four_at_once']
    print()
    print(f"Four runs at once on a cold cache: first batch after "
          f"{min(four['seconds']):.1f}-{max(four['seconds']):.1f} s; system memory taken at the "
          f"peak {four['system_memory_mb']:.0f} MB; each process's peak RSS "
          f"{min(four['peak_rss_mb']):.0f}-{max(four['peak_rss_mb']):.0f} MB.")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data-dir', help='the image folder to time (required unless --table)')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--json', default=None)
    p.add_argument('--table', action='store_true', help='only print the table of --json')
    args = p.parse_args()
    if args.table:
        with open(args.json or os.path.join(HERE, 'decode.json')) as f:
            return print_table(json.load(f))
    if not args.data_dir:
        p.error('--data-dir is required to measure')
    cores = len(os.sched_getaffinity(0))
    times = {k: [] for k in ['book'] + [f'cold, {w} process(es)' for w in range(1, cores + 1)]
             + ['cold, cached', 'warm']}
    peak = {}
    for rep in range(args.repeats):
        cache = tempfile.mkdtemp(prefix='decode-bench-')
        order = list(times)
        for name in (order if rep % 2 == 0 else order[::-1]):
            if name == 'warm' and not os.listdir(cache):
                measure('ours', args.data_dir, cache, 0)  # build the entry first
            if name == 'cold, cached':
                shutil.rmtree(cache)
                os.makedirs(cache)
            r = (measure('book', args.data_dir) if name == 'book' else
                 measure('ours', args.data_dir, cache if name in ('warm', 'cold, cached') else '',
                         int(name.split()[1]) if 'process' in name else 0))
            times[name].append(r['seconds'])
            peak[name] = max(peak.get(name, 0), r['peak_mb'])
            print(f'repeat {rep + 1}: {name}: {r["seconds"]:.2f} s, {r["images"]} images, '
                  f'peak RSS {r["peak_mb"]:.0f} MB', flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    cache = tempfile.mkdtemp(prefix='decode-bench-')
    outs, system_mb = four_at_once(args.data_dir, cache)
    shutil.rmtree(cache, ignore_errors=True)
    result = {'data_dir': args.data_dir, 'images': outs[0]['images'], 'cores': cores,
              'median_seconds': {k: statistics.median(v) for k, v in times.items()},
              'per_repeat': times, 'peak_rss_mb': peak,
              'four_at_once': {'seconds': [o['seconds'] for o in outs],
                               'peak_rss_mb': [o['peak_mb'] for o in outs],
                               'system_memory_mb': system_mb}}
    print()
    print_table(result)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
