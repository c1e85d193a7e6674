import os
import sys

import pytest
import zmq

# An installed multifrost (pip install ./python) is tested as installed; from a plain checkout,
# python/src is used instead.
try:
    import multifrost  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))


@pytest.fixture
def parent_dealer():
    """What a spawning parent binds: a DEALER on 127.0.0.1; yields (dealer, port as text)."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.bind("tcp://127.0.0.1:*")
    try:
        yield dealer, dealer.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
    finally:
        dealer.close()
        context.term()
