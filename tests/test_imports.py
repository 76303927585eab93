"""Plain modules: imports at the top, and one inside a function only where a comment says why."""
import ast
import io
import os
import tokenize

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = {'d2l_dcgan': True, 'examples': False, 'benchmarks': False}  # folder: with subfolders


def sources():
    for folder, recursive in FOLDERS.items():
        for root, dirs, files in os.walk(os.path.join(REPO_ROOT, folder)):
            yield from (os.path.join(root, f) for f in sorted(files) if f.endswith('.py'))
            if not recursive:
                break


def unexplained_imports(source):
    """Line numbers of the imports inside functions with no comment on their line, or on the
    line before the run of import lines they are part of."""
    tree = ast.parse(source)
    comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    import_lines = {line for n in imports for line in range(n.lineno, n.end_lineno + 1)}
    inside = {id(n) for f in ast.walk(tree)
              if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    bad = []
    for node in (n for n in imports if id(n) in inside):
        first = node.lineno
        while first - 1 in import_lines:  # a run of imports: one comment above it serves all
            first -= 1
        if not comments & set(range(first - 1, node.end_lineno + 1)):
            bad.append(node.lineno)
    return sorted(bad)


def test_every_import_inside_a_function_says_why():
    files = list(sources())
    assert len(files) > 30 and any(f.endswith(os.path.join('commands', 'train.py'))
                                   for f in files)
    bad = []
    for path in files:
        with open(path, encoding='utf-8') as f:
            bad += [f'{os.path.relpath(path, REPO_ROOT)}:{line}'
                    for line in unexplained_imports(f.read())]
    assert bad == [], 'imports inside functions without a comment saying why (move them to ' \
                      'the top of the module, or say why in one comment line): ' + ', '.join(bad)


def test_the_check_sees_an_import_without_its_reason():
    source = ('import os\n\n\ndef f():\n    import json\n    return json\n\n\n'
              'def g():\n    # here: loads after f()\n    import mxnet\n    from mxnet import np\n'
              '    return mxnet, np\n\n\ndef h():\n    import sys  # here: why\n    import re\n\n'
              '    import csv\n    return sys, re, csv\n')
    assert unexplained_imports(source) == [5, 20]
