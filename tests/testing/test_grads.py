"""check_grads_finite catches non-finite first and second derivatives in both Hessian modes."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from geomjax.testing import check_grads_finite


def f_bad_hessian(x):
    # gradient 1.5 sqrt(x) is finite at 0; the Hessian 0.75 / sqrt(x) is not.
    return jnp.sum(x**1.5)


@pytest.mark.parametrize("hessian", ["full", "hvp"])
def test_catches_infinite_hessian(hessian):
    check_grads_finite(f_bad_hessian, (jnp.array([1.0, 2.0]),), hessian=hessian)
    with pytest.raises((AssertionError, FloatingPointError)):
        check_grads_finite(f_bad_hessian, (jnp.array([0.0, 2.0]),), hessian=hessian)
    check_grads_finite(f_bad_hessian, (jnp.array([0.0, 2.0]),), order=1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`hessian`"):
        check_grads_finite(f_bad_hessian, (jnp.ones(2),), hessian="diag")
    with pytest.raises(ValueError, match="`order`"):
        check_grads_finite(f_bad_hessian, (jnp.ones(2),), order=3)
    with pytest.raises(ValueError, match="scalar"):
        check_grads_finite(lambda x: x, (jnp.ones(2),))
