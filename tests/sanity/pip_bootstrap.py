"""Make ansible-test's pip bootstrap work offline, for the ansible-test of the Python running this.

ansible-test puts pip into each virtual environment it creates with a get-pip script that it
downloads from a host this machine cannot reach, unless the script is already in its cache
(~/.ansible/test/cache/get_pip_X_Y.py, X.Y being the pip version that ansible-test release wants).
This asks the running ansible-test which packages its bootstrap installs (pip, and for older
releases setuptools and wheel, each pinned), downloads those wheels from PyPI once into the cache's
wheels/ directory (beside the script, not in a work tree that may be deleted: every checkout and
every ansible-test release with the same pip version shares the one script), and writes
tests/sanity/get_pip_standin.py into the cache under the name that ansible-test reads.

Usage: VENV/bin/python pip_bootstrap.py PYTHON_VERSION   (the Python version ansible-test runs for)
"""
import os
import pathlib
import subprocess
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages


def main():
    packages = get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))
    cache = pathlib.Path(os.path.expanduser('~/.ansible/test/cache'))
    wheel_dir = cache / 'wheels'
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = ['%s==%s' % (name, version) for name, version in packages.items()
               if not list(wheel_dir.glob('%s-%s-*.whl' % (name, version)))]
    if missing:
        print('pip download %s (the packages of ansible-test\'s pip bootstrap)' % ' '.join(missing))
        subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--disable-pip-version-check', '--no-deps',
                        '--only-binary', ':all:', '-d', str(wheel_dir)] + missing, check=True)
    target = cache / ('get_pip_%s.py' % packages['pip'].replace('.', '_'))
    standin = (pathlib.Path(__file__).parent / 'get_pip_standin.py').read_text()
    target.write_text(standin.replace('@WHEEL_DIR@', str(wheel_dir)))
    print('ansible-test bootstrap: %s installs %s from %s' % (
        target, ', '.join('%s %s' % item for item in packages.items()), wheel_dir))


if __name__ == '__main__':
    main()
