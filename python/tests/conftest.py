import os
import sys

# Run from a checkout without installing: python/src first on the path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
