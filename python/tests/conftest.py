import os
import sys

# An installed multifrost (pip install ./python) is tested as installed; from a plain checkout,
# python/src is used instead.
try:
    import multifrost  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
