"""Stand-in for ansible-test's downloaded get-pip script (its download host is unreachable here).

ansible-test runs it as ``python get_pip_X_Y.py [pip options] pip==X.Y ...``; we install the
requested packages from a local wheel directory instead. The Makefile substitutes WHEEL_DIR.
"""
import glob
import os
import sys

WHEEL_DIR = "@WHEEL_DIR@"

wheel = glob.glob(os.path.join(WHEEL_DIR, "pip-*.whl"))[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main  # noqa: E402  (needs the wheel on sys.path first)

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", WHEEL_DIR] + args))
