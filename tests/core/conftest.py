"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atstack.core import car as car_module
from atstack.core.mst import node as node_module

_C_PARSE, _C_ENCODE = node_module._c_parse, node_module._c_encode
_C_READ_BLOCKS = car_module._c_read_blocks


@pytest.fixture(scope="module", params=["c-node", "python-node"])
def node_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test against both MST node codecs: the C fast path and the Python code it falls back to.

    MST test modules opt in with ``pytestmark = pytest.mark.usefixtures("node_backend")``.
    """
    if request.param == "c-node" and (_C_PARSE is None or _C_ENCODE is None):
        pytest.fail("the C extension atstack.core.mst._node_c was not built")
    use_c = request.param == "c-node"
    node_module._c_parse = _C_PARSE if use_c else None
    node_module._c_encode = _C_ENCODE if use_c else None
    node_module.clear_node_cache()  # nodes decoded by the other backend must not answer for this one
    yield request.param
    node_module._c_parse, node_module._c_encode = _C_PARSE, _C_ENCODE
    node_module.clear_node_cache()


@pytest.fixture(scope="module", params=["c-car", "python-car"])
def car_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test against both CAR block readers: the C fast path and the Python code it falls back to.

    CAR test modules opt in with ``pytestmark = pytest.mark.usefixtures("car_backend")``.
    """
    if request.param == "c-car" and _C_READ_BLOCKS is None:
        pytest.fail("the C extension atstack.core._car_c was not built")
    car_module._c_read_blocks = _C_READ_BLOCKS if request.param == "c-car" else None
    yield request.param
    car_module._c_read_blocks = _C_READ_BLOCKS
