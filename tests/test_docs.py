"""The docs' tables of measured figures are what the benchmarks' scripts print from the committed
JSONs, so a figure cannot drift: each table sits between

    <!-- generated: python benchmarks/SCRIPT.py ... --table -->
    ...
    <!-- end generated -->

and this test runs the command and compares. `python tests/test_docs.py` rewrites every block
with its command's output (after a benchmark has added to its JSON)."""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest
from timeouts import limit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r'<!-- generated: (.+?) -->\n(.*?)<!-- end generated -->', re.S)


def printed(command):
    """What `command` (python benchmarks/...) prints, run by this Python from the repository."""
    argv = shlex.split(command)
    assert argv[0] == 'python' and argv[1].startswith('benchmarks/') and '--table' in argv
    r = subprocess.run([sys.executable, *argv[1:]], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=limit(120))
    assert r.returncode == 0, r.stderr
    return r.stdout


def generated_blocks():
    """(doc, command, text) of every generated block in README.md and docs/."""
    for path in sorted(glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md'))) + [
            os.path.join(REPO_ROOT, 'README.md')]:
        with open(path, encoding='utf-8') as f:
            for command, text in BLOCK.findall(f.read()):
                yield os.path.relpath(path, REPO_ROOT), command, text


BLOCKS = list(generated_blocks())


def test_every_benchmark_json_has_its_table_in_the_docs():
    commands = ' '.join(command for _, command, _ in BLOCKS)
    for json_file in ('quality-w64.json', 'quality-w32.json', 'quality-5-epochs.json'):
        assert f'--out benchmarks/{json_file} --table' in commands, json_file
    assert 'benchmarks/decode.py --table' in commands


@pytest.mark.parametrize('doc, command, text', BLOCKS,
                         ids=[f'{doc}: {command}' for doc, command, _ in BLOCKS])
def test_a_docs_table_is_what_its_script_prints(doc, command, text):
    out = printed(command)
    assert text == out, (f'{doc}: the table differs from what `{command}` prints '
                         f'(python tests/test_docs.py rewrites it):\n{out}')


def rewrite(path):
    """Every generated block of `path` replaced by its command's output."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    new = BLOCK.sub(lambda m: f'<!-- generated: {m[1]} -->\n{printed(m[1])}<!-- end generated -->',
                    text)
    if new != text:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(new)
        print(f'rewrote {os.path.relpath(path, REPO_ROOT)}')


if __name__ == '__main__':
    for doc in sorted({doc for doc, _, _ in BLOCKS}):
        rewrite(os.path.join(REPO_ROOT, doc))


# written by issue 34's branch (the container and the platforms), linked from here already
PENDING = {'docs/container.md', 'docs/platforms.md'}


def test_every_relative_link_and_anchor_resolves():
    """README.md's and docs/'s links to files in the repository, and to headings in them."""
    def anchors(path):
        with open(os.path.join(REPO_ROOT, path), encoding='utf-8') as f:
            heads = re.findall(r'^#+ (.+)$', f.read(), re.M)
        return {re.sub(r'[^\w\- ]', '', h.lower()).replace(' ', '-') for h in heads}
    docs = ['README.md'] + [os.path.relpath(p, REPO_ROOT)
                            for p in glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md'))]
    broken = []
    for doc in docs:
        with open(os.path.join(REPO_ROOT, doc), encoding='utf-8') as f:
            links = re.findall(r'\]\(([^)\s]+)\)', f.read())
        for link in links:
            if re.match(r'[a-z]+:', link):
                continue
            target, _, anchor = link.partition('#')
            path = os.path.normpath(os.path.join(os.path.dirname(doc), target)) if target else doc
            if path in PENDING and not os.path.exists(os.path.join(REPO_ROOT, path)):
                continue
            if not os.path.exists(os.path.join(REPO_ROOT, path)):
                broken.append(f'{doc}: {link}')
            elif anchor and path.endswith('.md') and anchor not in anchors(path):
                broken.append(f'{doc}: {link} (no such heading)')
    assert broken == []
