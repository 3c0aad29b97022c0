"""Property suite for a Manifold: the axioms every exp/log/dist/transp/retr must satisfy."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import PRNGKey
from geomjax.manifolds._base import Manifold
from geomjax.testing._tolerances import default_tolerance

# Ratio of the two step sizes in the retraction test: e(t / _RETR_SHRINK) vs e(t).
_RETR_SHRINK = 4.0


def _scale(c, tree):
    return jax.tree.map(lambda a: c * a, tree)


def _sub(a, b):
    return jax.tree.map(lambda p, q: p - q, a, b)


def _zeros_like(tree):
    return jax.tree.map(jnp.zeros_like, tree)


def _unit_tangent(manifold: Manifold, key: PRNGKey, x):
    """A random tangent vector at ``x`` of Riemannian norm 1."""
    u = manifold.random_tangent(key, x)
    return _scale(1.0 / manifold.norm(x, u), u)


def check_manifold_axioms(
    manifold: Manifold,
    key: PRNGKey,
    *,
    dtype=jnp.float32,
    n_samples: int = 8,
    rtol: float | None = None,
    atol: float | None = None,
    tangent_scale: float = 0.5,
    transport_isometry: bool = True,
) -> dict[str, float]:
    r"""Check the Riemannian-manifold axioms of ``manifold`` on random points; raise on failure.

    For ``n_samples`` random points :math:`x` (``manifold.random_point``), unit random tangent
    vectors :math:`\hat u, \hat w, \hat a, \hat b` at :math:`x` (``random_tangent``, normalized),
    :math:`s` = ``tangent_scale``, :math:`u = s \hat u`, :math:`y = \exp_x(u)` and
    :math:`z = \exp_x(s \hat w)`, it measures (the dict key in brackets):

    .. math::

        &\text{[check\_point]}\ \max(r(x), r(y), r(\operatorname{retr}_x u)), \quad
        \text{[check\_tangent]}\ r_x(u), \quad
        \text{[norm\_inner]}\ \big|\|u\|_x^2 - \langle u, u\rangle_x\big|,

        &\text{[exp\_zero]}\ d(\exp_x(0), x), \quad
        \text{[dist\_self]}\ d(x, x), \quad
        \text{[log\_self]}\ \|\log_x x\|_x,

        &\text{[exp\_log]}\ d(\exp_x(\log_x y), y), \quad
        \text{[log\_exp]}\ \|\log_x(\exp_x u) - u\|_x, \quad
        \text{[dist\_exp]}\ |d(x, y) - s|,

        &\text{[dist\_log]}\ |d(x, y) - \|\log_x y\|_x|, \quad
        \text{[dist\_symmetry]}\ |d(x, y) - d(y, x)|,

        &\text{[triangle]}\ \max\big(0,\ d(a, c) - d(a, b) - d(b, c)\big)
        \text{ over the orderings of } (x, y, z),

        &\text{[transp\_tangent]}\ r_y(\Gamma_{x\to y}\hat a), \quad
        \text{[transp\_isometry]}\ |\langle\Gamma\hat a, \Gamma\hat b\rangle_y
            - \langle\hat a, \hat b\rangle_x|,

        &\text{[retr\_exp]}\ e(s) = d(\operatorname{retr}_x(s\hat u), \exp_x(s\hat u)), \quad
        \text{[retr\_order]}\ e(s/4) / e(s),

    where :math:`r` is ``check_point``/``check_tangent``. Points are compared with the
    manifold's own ``dist`` (so quotient representations, e.g. Grassmann bases, compare
    correctly) and tangent vectors with its own norm. The test points are near :math:`x`
    (distance ``tangent_scale``, and at most twice that apart) to stay inside the injectivity
    radius; choose ``tangent_scale`` below it (and below half of it for the triangle test).

    Every error must be ``<= atol + rtol * reference`` (reference: the size of the compared
    quantity, ``tangent_scale`` for point comparisons, 1 for residuals), except
    ``retr_order``: a retraction agrees with ``exp`` to first order, ``e(t) = O(t^2)``, so
    shrinking ``t`` four-fold must shrink the error at least ``4^1.5 = 8``-fold (``<= 1/8``,
    where ``O(t^2)`` gives 1/16 and an error of order ``t`` gives 1/4); it is skipped when
    ``e(s/4) <= atol`` (``retr = exp`` up to round-off). ``transp_isometry`` is only enforced
    with ``transport_isometry=True`` (transports by projection are not isometries), but always
    measured. NaN never passes.

    Args:
      manifold: the manifold under test (its points may be arrays or tuples, e.g.
        :class:`~geomjax.manifolds.Product`).
      key: PRNG key.
      dtype: float dtype of the sampled points (``float64`` needs ``jax_enable_x64``).
      n_samples: number of random base points, a positive int.
      rtol: relative tolerance; default ``default_tolerance(dtype, 10)`` (1e-4 in float32,
        1e-9 in float64: a few round-off steps through trigonometric/matrix functions).
      atol: absolute tolerance; default equal to the default ``rtol``.
      tangent_scale: length of the tangent steps, positive.
      transport_isometry: require ``transp`` to preserve inner products.

    Returns:
      dict mapping each measured quantity above to its largest value over the samples
      (Python floats).

    Raises:
      AssertionError: listing every failed axiom with its measured error and tolerance.
      ValueError: for invalid arguments, or ``float64`` requested without ``jax_enable_x64``.

    Examples:
      >>> import jax
      >>> from geomjax.manifolds import Sphere
      >>> from geomjax.testing import check_manifold_axioms
      >>> errors = check_manifold_axioms(Sphere(2), jax.random.key(0))
      >>> errors["exp_log"] < 1e-4
      True
    """
    fn = "check_manifold_axioms"
    if not isinstance(manifold, Manifold):
        raise TypeError(
            f"{fn}: argument `manifold` must be a Manifold; got {type(manifold).__name__}"
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"{fn}: argument `n_samples` must be a positive int; got {n_samples!r}")
    if not isinstance(tangent_scale, numbers.Real) or not tangent_scale > 0:
        raise ValueError(
            f"{fn}: argument `tangent_scale` must be a positive float; got {tangent_scale!r}"
        )
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{fn}: argument `dtype` must be a float dtype; got {dtype}")
    if dtype.itemsize == 8 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"{fn}: argument `dtype` is float64 but jax_enable_x64 is off; run inside "
            "`with jax.enable_x64(True):`"
        )
    base = default_tolerance(dtype, 10.0)
    rtol = base if rtol is None else float(rtol)
    atol = base if atol is None else float(atol)
    s = float(tangent_scale)
    s_small = s / _RETR_SHRINK

    def one(k):
        m = manifold
        kx, ku, kw, ka, kb = jax.random.split(k, 5)
        x = m.random_point(kx, dtype)
        uhat = _unit_tangent(m, ku, x)
        what = _unit_tangent(m, kw, x)
        ahat = _unit_tangent(m, ka, x)
        bhat = _unit_tangent(m, kb, x)
        u = _scale(s, uhat)
        y = m.exp(x, u)
        z = m.exp(x, _scale(s, what))
        zero = _zeros_like(uhat)
        r = m.retr(x, u)

        out = {}
        out["point_dtype"] = jnp.asarray(all(leaf.dtype == dtype for leaf in jax.tree.leaves(x)))
        out["check_point"] = jnp.max(
            jnp.stack([m.check_point(x), m.check_point(y), m.check_point(r)])
        )
        out["check_tangent"] = m.check_tangent(x, u)
        out["norm_inner"] = jnp.abs(m.norm(x, u) ** 2 - m.inner(x, u, u))
        out["exp_zero"] = m.dist(m.exp(x, zero), x)
        out["dist_self"] = jnp.abs(m.dist(x, x))
        out["log_self"] = m.norm(x, m.log(x, x))

        lxy = m.log(x, y)
        dxy = m.dist(x, y)
        out["exp_log"] = m.dist(m.exp(x, lxy), y)
        out["log_exp"] = m.norm(x, _sub(lxy, u))
        out["dist_exp"] = jnp.abs(dxy - s)
        out["dist_log"] = jnp.abs(dxy - m.norm(x, lxy))
        out["dist_symmetry"] = jnp.abs(dxy - m.dist(y, x))

        dxz, dyz = m.dist(x, z), m.dist(y, z)
        viol = jnp.stack([dxz - dxy - dyz, dxy - dxz - dyz, dyz - dxy - dxz])
        out["triangle"] = jnp.maximum(jnp.max(viol), 0.0)

        ta, tb = m.transp(x, y, ahat), m.transp(x, y, bhat)
        out["transp_tangent"] = m.check_tangent(y, ta)
        out["transp_isometry"] = jnp.maximum(
            jnp.abs(m.inner(y, ta, tb) - m.inner(x, ahat, bhat)),
            jnp.abs(m.inner(y, ta, ta) - 1.0),
        )

        e_big = m.dist(r, y)
        u_small = _scale(s_small, uhat)
        e_small = m.dist(m.retr(x, u_small), m.exp(x, u_small))
        out["retr_exp"] = e_big
        out["retr_small"] = e_small
        ratio = e_small / jnp.maximum(e_big, jnp.finfo(dxy.dtype).tiny)
        out["retr_order"] = jnp.where(e_small <= atol, 0.0, ratio)
        return out

    keys = jax.random.split(key, n_samples)
    measured = jax.vmap(one)(keys)
    if not bool(np.all(np.asarray(measured.pop("point_dtype")))):
        raise AssertionError(
            f"{fn}: {type(manifold).__name__}.random_point(key, dtype={dtype}) returned "
            "points of another dtype: "
            f"{jax.tree.map(lambda a: a.dtype, manifold.random_point(key, dtype))}"
        )
    retr_small = measured.pop("retr_small")
    errors = {name: float(np.max(np.asarray(v, np.float64))) for name, v in measured.items()}

    # Tolerance for each measured quantity: atol + rtol * (size of the reference quantity).
    unit = atol + rtol
    at_scale = atol + rtol * s
    tols = {
        "check_point": unit,
        "check_tangent": atol + rtol * s,
        "norm_inner": atol + rtol * s * s,
        "exp_zero": atol,
        "dist_self": atol,
        "log_self": atol,
        "exp_log": at_scale,
        "log_exp": at_scale,
        "dist_exp": at_scale,
        "dist_log": at_scale,
        "dist_symmetry": at_scale,
        "triangle": atol + rtol * 3 * s,
        "transp_tangent": unit,
        "transp_isometry": unit if transport_isometry else None,
        "retr_exp": None,
        "retr_order": _RETR_SHRINK**-1.5,
    }
    what = {
        "check_point": "points x, exp(x, u), retr(x, u) on the manifold (check_point)",
        "check_tangent": "random_tangent is tangent (check_tangent)",
        "norm_inner": "norm(x, u)^2 == inner(x, u, u)",
        "exp_zero": "exp(x, 0) == x",
        "dist_self": "dist(x, x) == 0",
        "log_self": "log(x, x) == 0",
        "exp_log": "exp(x, log(x, y)) == y",
        "log_exp": "log(x, exp(x, u)) == u",
        "dist_exp": "dist(x, exp(x, u)) == norm(u)",
        "dist_log": "dist(x, y) == norm(x, log(x, y))",
        "dist_symmetry": "dist(x, y) == dist(y, x)",
        "triangle": "triangle inequality dist(a, c) <= dist(a, b) + dist(b, c)",
        "transp_tangent": "transp(x, y, v) is tangent at y",
        "transp_isometry": "transp preserves inner products",
        "retr_order": (
            f"retr agrees with exp to first order: error ratio e(t/{_RETR_SHRINK:g}) / e(t) "
            f"(e(t) = {errors['retr_exp']:.3e}, e(t/{_RETR_SHRINK:g}) = "
            f"{float(np.max(np.asarray(retr_small))):.3e})"
        ),
    }
    failures = []
    for name, tol in tols.items():
        err = errors[name]
        if tol is None:
            if not np.isfinite(err):
                failures.append(f"  {name}: non-finite value {err}")
            continue
        if not err <= tol:  # NaN fails
            failures.append(f"  {what[name]} [{name}]: error {err:.3e} > tolerance {tol:.3e}")
    if failures:
        raise AssertionError(
            f"{fn}: {type(manifold).__name__} ({dtype}, {n_samples} samples, "
            f"tangent_scale={s:g}) failed:\n" + "\n".join(failures)
        )
    return errors
