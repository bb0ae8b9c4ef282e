from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for tests/operator_registry.py and tests/tiny.py

from operator_registry import REGISTRY  # noqa: E402

from pnp_rgm.operators import make_operator  # noqa: E402


@pytest.fixture(params=sorted(REGISTRY), scope="module")
def op_case(request):
    """(operator, reference forward or None, dense matrix A built by applying forward to the identity basis)."""
    name, shape, params, ref = REGISTRY[request.param]
    op = make_operator(name, shape, **params)
    n = op.in_numel
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *op.in_shape)
    dense = op.forward(basis).reshape(n, -1).T.numpy()  # (M, N)
    return op, ref, dense


@pytest.fixture(autouse=True)
def _one_thread():
    """Test tensors are tiny: one thread is fastest and immune to a busy second core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
