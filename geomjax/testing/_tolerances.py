r"""Tolerances from first principles: the dtype's epsilon, the problem's size and conditioning.

A computed quantity :math:`\hat y` differs from its exact value :math:`y` by round-off whose
size follows from the unit of one rounding step (the machine epsilon
:math:`\varepsilon` = ``finfo(dtype).eps``, twice the unit round-off :math:`u`), the number
:math:`n` of rounding steps that accumulate, and the condition number :math:`\kappa` of the
problem (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM 2002):

- a sum of :math:`n` terms in an unspecified order (XLA picks it per backend and CPU):
  :math:`|\hat s - s| \le (n - 1) u \sum_i |x_i|` in the worst case (Higham Sec. 4.2),
  :math:`\lceil \log_2 n \rceil u \sum_i |x_i|` for pairwise summation, and
  :math:`O(\sqrt{n}\, u) \sum_i |x_i|` typically, where the rounding errors behave like
  independent random variables (Higham Sec. 2.8); a dot product or matrix product of inner
  dimension :math:`n` is such a sum;
- a backward-stable solve, eigendecomposition or matrix function: relative forward error
  :math:`\lesssim \kappa \cdot c(n)\, u`;
- :math:`k` chained well-conditioned steps (iterations, layers): errors add,
  :math:`\lesssim k` times the error of one step.

:func:`rounding_tolerance` packages this as
``safety * eps * growth(n_ops) * cond``; :func:`matmul_eps` gives the unit of one rounding
step of a float32 matrix product at the effective precision of the backend (TF32 on NVIDIA
GPUs unless ``HIGHEST`` is requested); :func:`default_tolerance` keeps the library-wide
defaults (float32 about ``1e-5``, float64 ``1e-10`` relative).
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

# Library-wide default relative tolerances (see ``default_tolerance`` for their reasoning).
_RTOL = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}

# Unit of one rounding step (spacing of floats at 1) of the formats a float32 matrix product
# may use internally: TF32 and bfloat16 keep 10 and 7 explicit mantissa bits.
_TF32_EPS = 2.0**-10
_BF16_EPS = 2.0**-7
# ``jax_default_matmul_precision`` / ``precision=`` spellings, grouped by the arithmetic used.
_FULL_F32 = {"highest", "float32", "f32_f32_f32", "tf32_tf32_f32_x3", "bf16_bf16_f32_x6"}
_FULL_F32 |= {"bf16_bf16_f32_x9"}
_TF32 = {"tensorfloat32", "tf32_tf32_f32"}
_BF16 = {"bfloat16", "bf16_bf16_f32"}
_BACKEND_DEFAULT = {"default", "fastest", "high"}
_GROWTHS = ("linear", "sqrt", "log2")


def _float_dtype(fn: str, dtype) -> np.dtype:
    try:
        dt = np.dtype(jnp.dtype(dtype))
    except TypeError as err:
        raise ValueError(f"{fn}: argument `dtype` must be a float dtype; got {dtype!r}") from err
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"{fn}: argument `dtype` must be a float dtype; got {dt}")
    return dt


def default_tolerance(dtype, scale: float = 1.0) -> float:
    r"""Default relative tolerance for ``dtype`` (float32 ``1e-5``, float64 ``1e-10``), times ``scale``.

    The library-wide default for comparing a result against an independent reference:

    - float32 ``1e-5`` is about :math:`84\,\varepsilon_{32}`: the random-walk growth of some
      400 rounding steps with safety 4, ``rounding_tolerance(float32, n_ops=441)``, enough for
      a short chain of well-conditioned operations (``cond`` of order 1) on any CPU;
    - float64 ``1e-10`` is about :math:`4.5 \cdot 10^5\,\varepsilon_{64}`, deliberately loose
      in epsilon units: float64 tests compare routes that differ in their conditioning (e.g. an
      eigh-based matrix function against a Padé one on matrices with condition numbers up to
      ``1e5``), and a float64 error near ``1e-10`` is a bug long before it is round-off;
    - float16 ``1e-2`` is about :math:`10\,\varepsilon_{16}`.

    Where a test's problem is larger or worse conditioned than that, state its tolerance with
    :func:`rounding_tolerance` instead (or pass ``scale`` with a one-line reason).

    Args:
      dtype: float16, float32 or float64.
      scale: factor applied to the default, positive.

    Returns:
      The relative tolerance, a Python float.

    Raises:
      ValueError: if ``dtype`` is not one of the three float dtypes.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.testing import default_tolerance
      >>> default_tolerance(jnp.float32), default_tolerance(jnp.float32, 10)
      (1e-05, 0.0001)
    """
    dt = np.dtype(jnp.dtype(dtype))
    if dt not in _RTOL:
        raise ValueError(f"default_tolerance: argument `dtype` must be a float dtype; got {dt}")
    return _RTOL[dt] * scale


def matmul_eps(dtype, precision=None, *, backend: str | None = None) -> float:
    r"""Unit of one rounding step in a matrix product of ``dtype`` at the effective precision.

    For float32 inputs the arithmetic inside ``jnp.dot`` / ``@`` / ``einsum`` depends on the
    backend and the requested precision: CPUs use float32 (:math:`\varepsilon = 2^{-23}`);
    NVIDIA GPUs (Ampere and later) round the inputs to TensorFloat32 (10 mantissa bits,
    :math:`2^{-10} \approx 9.8 \cdot 10^{-4}`) unless ``HIGHEST`` (or ``"float32"``) is asked
    for; TPUs use one bfloat16 pass (:math:`2^{-7}`) by default. This returns the epsilon of
    the arithmetic actually used, so a tolerance for code whose accuracy is limited by its
    matrix products can be stated as ``rounding_tolerance(dtype, eps=matmul_eps(dtype), ...)``.
    On GPUs it assumes TF32 is available (an older GPU is more accurate, never less).

    Args:
      dtype: the float dtype of the operands.
      precision: the ``precision=`` of the products (``jax.lax.Precision``, a string such as
        ``"highest"`` or a dot-algorithm preset name such as ``"F32_F32_F32"``); ``None`` reads
        ``jax_default_matmul_precision`` (``None`` there means the backend's default).
      backend: ``"cpu"``, ``"gpu"``/``"cuda"``/``"rocm"`` or ``"tpu"``; ``None`` is
        ``jax.default_backend()``.

    Returns:
      The epsilon of one rounding step, a Python float (``finfo(dtype).eps`` for float64 and
      for full-precision float32 products).

    Raises:
      ValueError: if ``dtype`` is not a float dtype or ``precision`` is not recognised.

    Examples:
      >>> import jax.numpy as jnp
      >>> from geomjax.testing import matmul_eps
      >>> matmul_eps(jnp.float32, backend="cpu") == float(jnp.finfo(jnp.float32).eps)
      True
      >>> matmul_eps(jnp.float32, backend="gpu"), matmul_eps(jnp.float32, "highest", backend="gpu")
      (0.0009765625, 1.1920928955078125e-07)
    """
    fn = "matmul_eps"
    dt = _float_dtype(fn, dtype)
    eps = float(np.finfo(dt).eps) if dt != jnp.bfloat16 else _BF16_EPS
    if dt != np.dtype(np.float32):
        return eps
    if precision is None:
        precision = jax.config.jax_default_matmul_precision
    if isinstance(precision, (tuple, list)):  # (lhs, rhs) precisions: the coarser one counts
        return max(matmul_eps(dtype, p, backend=backend) for p in precision)
    name = "default" if precision is None else getattr(precision, "name", precision)
    name = str(name).lower()
    if name in _FULL_F32:
        return eps
    if name in _TF32:
        return _TF32_EPS
    if name in _BF16:
        return _BF16_EPS
    if name not in _BACKEND_DEFAULT:
        raise ValueError(
            f"{fn}: argument `precision` must be a jax.lax.Precision, 'default', 'high', "
            f"'highest', 'float32', 'tensorfloat32', 'bfloat16' or a dot-algorithm preset "
            f"name; got {precision!r}"
        )
    platform = (backend or jax.default_backend()).lower()
    if platform in ("gpu", "cuda", "rocm"):
        return _TF32_EPS
    if platform == "tpu":
        return _BF16_EPS if name in ("default", "fastest") else 2.0**-15  # bf16 x3 passes
    return eps


def rounding_tolerance(
    dtype,
    *,
    n_ops: float = 1,
    cond: float = 1.0,
    growth: str = "sqrt",
    safety: float = 4.0,
    eps: float | None = None,
) -> float:
    r"""Relative tolerance ``safety * eps * growth(n_ops) * cond`` from a round-off model.

    .. math::

        \text{tol} = s\, \varepsilon\, g(n)\, \kappa, \qquad
        g(n) = \begin{cases} n & \text{linear (worst case)} \\
                              \sqrt{n} & \text{sqrt (typical, random rounding)} \\
                              \max(1, \lceil \log_2 n \rceil) & \text{log2 (pairwise)}
               \end{cases}

    with :math:`\varepsilon` = ``eps`` (default ``finfo(dtype).eps``), :math:`n` = ``n_ops``
    the number of rounding steps whose errors accumulate into the compared quantity (terms of a
    sum, the inner dimension of a product, layers or iterations), :math:`\kappa` = ``cond`` the
    relative condition number of the problem (how much a relative perturbation of the inputs
    or of an intermediate result is amplified in the output) and :math:`s` = ``safety``.

    Which growth: ``"linear"`` is the rigorous worst case (:math:`\gamma_n \approx n u`), met
    only by adversarial or systematically biased roundings (e.g. a running sum of equal
    positive terms that all round the same way); ``"sqrt"`` is the typical size when roundings
    are independent, the right model for sums whose order the compiler chooses; ``"log2"`` is
    the worst case of a pairwise (tree) reduction. ``safety = 4`` covers the constants of the
    bounds (a rounding costs up to :math:`u = \varepsilon/2` per operation, a few operations per
    term) and four standard deviations of the random-rounding model; a test that fails at four
    times the modelled error is a bug, not round-off.

    Args:
      dtype: float dtype of the computation.
      n_ops: number of accumulating rounding steps, ``>= 1``.
      cond: condition number of the problem, ``>= 1``.
      growth: ``"sqrt"``, ``"linear"`` or ``"log2"``.
      safety: safety factor, positive.
      eps: unit of one rounding step; ``None`` is ``finfo(dtype).eps``. Pass
        :func:`matmul_eps` for work limited by matrix products at the default precision.

    Returns:
      The relative tolerance, a Python float.

    Raises:
      ValueError: for a non-float ``dtype``, ``n_ops < 1``, ``cond < 1``, an unknown
        ``growth`` or a non-positive ``safety`` / ``eps``.

    Examples:
      Summing 5e4 positive float32 terms in an order XLA chooses (random-rounding model):

      >>> import jax.numpy as jnp
      >>> from geomjax.testing import rounding_tolerance
      >>> tol = rounding_tolerance(jnp.float32, n_ops=50_000)
      >>> round(tol, 7)
      0.0001066
      >>> rounding_tolerance(jnp.float64, cond=1e4) < 1e-11  # a solve with cond(A) = 1e4
      True

    References:
      N. J. Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002
      (Sections 2.8 and 4.2: statistical and worst-case error of summation).
    """
    fn = "rounding_tolerance"
    dt = _float_dtype(fn, dtype)
    for name, value, low in (("n_ops", n_ops, 1.0), ("cond", cond, 1.0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= low:
            raise ValueError(f"{fn}: argument `{name}` must be a real number >= 1; got {value!r}")
    if growth not in _GROWTHS:
        raise ValueError(f"{fn}: argument `growth` must be one of {_GROWTHS}; got {growth!r}")
    if isinstance(safety, bool) or not isinstance(safety, numbers.Real) or not safety > 0:
        raise ValueError(f"{fn}: argument `safety` must be a positive number; got {safety!r}")
    if eps is None:
        eps = float(jnp.finfo(dt).eps)
    elif isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"{fn}: argument `eps` must be a positive number; got {eps!r}")
    n = float(n_ops)
    g = {"linear": n, "sqrt": math.sqrt(n), "log2": max(1.0, math.ceil(math.log2(n)))}[growth]
    return float(safety) * float(eps) * g * float(cond)


def assert_allclose_dtype(
    actual,
    desired,
    *,
    scale: float = 1.0,
    atol: float = 0.0,
    rtol: float | None = None,
    err_msg: str = "",
) -> None:
    """Assert ``||actual - desired|| <= rtol ||desired|| + atol`` (Frobenius norms over the array).

    ``rtol`` defaults to ``default_tolerance(actual.dtype, scale)``; pass it explicitly (e.g.
    from :func:`rounding_tolerance`) where the problem's size or conditioning sets it. NaN or
    inf in ``actual`` always fails. ``atol`` is for references that are (close to) zero.

    Raises:
      AssertionError: with the measured error and the tolerance.

    Examples:
      >>> import numpy as np
      >>> from geomjax.testing import assert_allclose_dtype
      >>> x = np.float32([1.0, 2.0, 3.0])
      >>> assert_allclose_dtype(x * (1 + 1e-7), x)
      >>> assert_allclose_dtype(x + 1e-3, x)
      Traceback (most recent call last):
      ...
      AssertionError: error 1.732e-03 (relative 4.629e-04) > rtol 1.0e-05 * 3.742e+00 + atol 0.0e+00.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    if actual.shape != desired.shape:
        raise AssertionError(f"shape mismatch: {actual.shape} vs {desired.shape}. {err_msg}")
    if not np.all(np.isfinite(actual)):
        raise AssertionError(f"non-finite values in actual. {err_msg}")
    tol = default_tolerance(actual.dtype, scale) if rtol is None else float(rtol)
    ref_norm = float(np.linalg.norm(desired.astype(np.float64)))
    diff = float(np.linalg.norm(actual.astype(np.float64) - desired.astype(np.float64)))
    if not diff <= tol * ref_norm + atol:
        rel = diff / max(ref_norm, np.finfo(np.float64).tiny)
        raise AssertionError(
            f"error {diff:.3e} (relative {rel:.3e}) > rtol {tol:.1e} * {ref_norm:.3e} "
            f"+ atol {atol:.1e}. {err_msg}"
        )
