"""Stand-in for ansible-test's downloaded get-pip script (its download host is unreachable here).

ansible-test runs it as ``python get_pip_X_Y.py [pip options] pip==X.Y [setuptools==... wheel==...]``
to put pip into an empty virtual environment; this installs the requested packages from a local
wheel directory instead, with the requested pip itself. tests/sanity/pip_bootstrap.py fills the
directory and writes this file, with WHEEL_DIR substituted, where each ansible-test looks for it.
"""
import glob
import os
import sys

WHEEL_DIR = "@WHEEL_DIR@"

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
pip_version = [a.split("==", 1)[1] for a in args if a.startswith("pip==")][0]
wheel = glob.glob(os.path.join(WHEEL_DIR, "pip-%s-*.whl" % pip_version))[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main  # noqa: E402  (needs the wheel on sys.path first)

sys.exit(main(["install", "--no-index", "--find-links", WHEEL_DIR] + args))
