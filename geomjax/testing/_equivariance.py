"""Equivariance testing: Haar-random group elements and ``assert_equivariant``.

Group elements act on the arguments and outputs of a function according to their declared
*kind* (invariant scalar, rotating vector, rotating and translating position, per-edge
attribute, node index, ...). ``assert_equivariant`` checks :math:`f(g \\cdot x) = g \\cdot f(x)`
for random :math:`g` and raises with the largest error found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, PRNGKey
from geomjax.testing._tolerances import matmul_eps, rounding_tolerance

_IN_KINDS = (
    "scalar",
    "vector",
    "position",
    "edge",
    "index",
    "static",
    "node_mask",
    "graph_scalar",
    "graph_vector",
    "irreps",
    "graph_irreps",
)
_GROUPS = ("SO3", "O3", "SE3", "E3", "none")
# Kinds whose leaves carry a node axis (axis 0) that a node permutation reorders.
_NODE_KINDS = ("scalar", "vector", "position", "node_mask", "irreps")
# Kinds whose leaves are IrrepsArrays, transformed by the Wigner matrices of their irreps.
_IRREPS_KINDS = ("irreps", "graph_irreps")
# Kinds whose last axis is a spatial dimension that rotations act on.
_ROTATING = ("vector", "position", "graph_vector")
# Condition-number budget of a well-conditioned network in the default tolerance (see
# ``assert_equivariant``): relative input perturbations and per-layer roundings are amplified
# at most 16-fold on their way to the output.
_NETWORK_COND = 16.0


def random_orthogonal(
    key: PRNGKey, d: int, dtype: Any = jnp.float32, reflections: bool = True
) -> Array:
    r"""A Haar-random ``d x d`` orthogonal matrix: from :math:`O(d)`, or :math:`SO(d)`.

    QR-decomposes a standard Gaussian matrix :math:`G = QR` and fixes the signs,
    :math:`Q \leftarrow Q \operatorname{diag}(\operatorname{sign} R_{ii})`, which makes
    :math:`Q` Haar-distributed on :math:`O(d)` (Mezzadri 2007). With
    ``reflections=False`` the first column is negated when :math:`\det Q = -1`; right
    multiplication by a fixed reflection preserves the Haar measure, so the result is
    Haar-distributed on :math:`SO(d)`.

    Args:
      key: PRNG key.
      d: dimension, ``d >= 1``.
      dtype: float dtype of the result.
      reflections: ``True`` samples :math:`O(d)` (determinant :math:`\pm 1`), ``False`` samples
        :math:`SO(d)` (determinant :math:`+1`).

    Returns:
      ``(d, d)`` array :math:`Q` with :math:`Q^\top Q = I`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> q = random_orthogonal(jax.random.key(0), 3, reflections=False)
      >>> bool(jnp.allclose(q.T @ q, jnp.eye(3), atol=1e-5)), round(float(jnp.linalg.det(q)), 4)
      (True, 1.0)

    References:
      F. Mezzadri, "How to generate random matrices from the classical compact groups",
      Notices of the AMS 54(5), 2007. arXiv:math-ph/0609050.
    """
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"random_orthogonal: argument `d` must be a positive int; got {d!r}")
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise TypeError(f"random_orthogonal: argument `dtype` must be a float dtype; got {dtype}")
    g = jax.random.normal(key, (d, d), dtype=dtype)
    q, r = jnp.linalg.qr(g)
    signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)
    q = q * signs[None, :]
    if not reflections:
        flip = jnp.where(jnp.linalg.det(q) < 0, -1.0, 1.0).astype(dtype)
        q = q.at[:, 0].multiply(flip)
    return q


def random_rotation(key: PRNGKey, d: int, dtype: Any = jnp.float32) -> Array:
    r"""A Haar-random rotation from :math:`SO(d)`: ``random_orthogonal(..., reflections=False)``.

    Args:
      key: PRNG key.
      d: dimension, ``d >= 1``.
      dtype: float dtype of the result.

    Returns:
      ``(d, d)`` array :math:`R` with :math:`R^\top R = I`, :math:`\det R = 1`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> r = random_rotation(jax.random.key(1), 2)
      >>> round(float(jnp.linalg.det(r)), 4)
      1.0

    References:
      F. Mezzadri, "How to generate random matrices from the classical compact groups",
      Notices of the AMS 54(5), 2007. arXiv:math-ph/0609050.
    """
    return random_orthogonal(key, d, dtype, reflections=False)


def random_permutation(key: PRNGKey, n: int) -> Array:
    r"""A uniformly random permutation :math:`\pi` of ``range(n)`` as an ``int32`` array.

    Permuting node-indexed arrays means ``x_new = x[perm]`` (new node :math:`i` is old node
    :math:`\pi(i)`); indices pointing at old nodes map to ``argsort(perm)[index]``.

    Args:
      key: PRNG key.
      n: number of elements, ``n >= 1``.

    Returns:
      ``(n,)`` int32 array containing each of ``0..n-1`` once.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> p = random_permutation(jax.random.key(0), 5)
      >>> sorted(p.tolist())
      [0, 1, 2, 3, 4]
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"random_permutation: argument `n` must be a positive int; got {n!r}")
    return jax.random.permutation(key, n).astype(jnp.int32)


def _leaves(tree) -> list:
    return [leaf for leaf in jax.tree.leaves(tree) if leaf is not None]


def _check_kinds(name: str, kinds: Sequence[str]) -> None:
    for i, kind in enumerate(kinds):
        if kind not in _IN_KINDS:
            raise ValueError(
                f"assert_equivariant: argument `{name}`[{i}] must be one of {_IN_KINDS}; "
                f"got {kind!r}"
            )


def _is_irreps_array(x) -> bool:
    from geomjax.equivariant._irreps_array import IrrepsArray

    return isinstance(x, IrrepsArray)


def _transform_irreps(value, kind: str, rot, perm):
    """Apply (rot, perm) to the IrrepsArray leaves of ``value``: ``x -> x_perm D(R)^T``."""
    from geomjax.equivariant._irreps_array import IrrepsArray
    from geomjax.equivariant._wigner import irreps_wigner_d

    def leaf_fn(a):
        if not _is_irreps_array(a):
            raise ValueError(
                f"assert_equivariant: a {kind!r} argument or output must be (a pytree of) "
                f"IrrepsArrays; got a leaf of type {type(a).__name__}"
            )
        data = a.array
        if perm is not None and kind == "irreps":
            if data.ndim < 2:
                raise ValueError(
                    "assert_equivariant: an 'irreps' argument needs a node axis 0 when "
                    f"`permute=True`; got shape {data.shape} (use 'graph_irreps')"
                )
            data = data[perm]
        if rot is not None:
            d = irreps_wigner_d(a.irreps, rot.astype(data.dtype))
            data = jnp.matmul(data, d.T, precision=jax.lax.Precision.HIGHEST)
        return IrrepsArray._unchecked(a.irreps, data)

    return jax.tree.map(leaf_fn, value, is_leaf=_is_irreps_array)


def _transform(value, kind: str, rot, trans, perm, inv_perm):
    """Apply the group element (rot, trans, perm) to one argument/output pytree of ``kind``."""
    if kind in ("static", "edge", "graph_scalar"):
        return value
    if kind in _IRREPS_KINDS:
        return _transform_irreps(value, kind, rot, perm)

    def leaf_fn(a):
        a = jnp.asarray(a)
        if kind == "index":
            if perm is None:
                return a
            n = inv_perm.shape[0]
            inside = (a >= 0) & (a < n)
            mapped = inv_perm[jnp.clip(a, 0, n - 1)].astype(a.dtype)
            return jnp.where(inside, mapped, a)
        if perm is not None and kind in _NODE_KINDS:
            a = a[perm]
        if rot is not None and kind in _ROTATING:  # full precision: no TF32 in the check itself
            a = jnp.matmul(a, rot.T.astype(a.dtype), precision=jax.lax.Precision.HIGHEST)
        if trans is not None and kind == "position":
            a = a + trans.astype(a.dtype)
        return a

    return jax.tree.map(leaf_fn, value)


def _geometry_of_args(args, in_kinds):
    """Spatial dimension, float dtype and RMS scale of the rotating arguments."""
    dims, dtypes, sq, count = set(), [], 0.0, 0
    for a, kind in zip(args, in_kinds):
        if kind in _IRREPS_KINDS:  # irreps act on 3-D rotations
            dims.add(3)
            dtypes.extend(jnp.asarray(leaf).dtype for leaf in _leaves(a))
            continue
        if kind not in _ROTATING:
            continue
        for leaf in _leaves(a):
            leaf = jnp.asarray(leaf)
            if leaf.ndim < 1:
                raise ValueError(
                    f"assert_equivariant: a {kind!r} argument needs a last axis of size d; "
                    f"got shape {leaf.shape}"
                )
            dims.add(leaf.shape[-1])
            dtypes.append(leaf.dtype)
            if kind == "position":
                arr = np.asarray(leaf, dtype=np.float64)
                sq += float(np.sum(arr**2))
                count += arr.size
    if len(dims) > 1:
        raise ValueError(
            "assert_equivariant: all 'vector'/'position'/'graph_vector' arguments must share "
            f"the last-axis dimension (3 with 'irreps' arguments); got {sorted(dims)}"
        )
    dim = dims.pop() if dims else None
    dtype = jnp.result_type(*dtypes) if dtypes else jnp.float32
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.float32
    scale = float(np.sqrt(sq / count)) if count and sq > 0 else 1.0
    return dim, dtype, scale


def _input_size(args, in_kinds) -> int:
    """Number of float entries in the non-``static`` arguments (what flows into ``f``)."""
    size = 0
    for a, kind in zip(args, in_kinds):
        if kind == "static":
            continue
        for leaf in _leaves(a):
            if jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
                size += int(np.size(leaf))
    return max(size, 1)


def _num_nodes(args, in_kinds) -> int:
    sizes = set()
    for i, (a, kind) in enumerate(zip(args, in_kinds)):
        if kind not in _NODE_KINDS:
            continue
        for leaf in _leaves(a):
            shape = jnp.shape(leaf)
            if len(shape) < 1:
                raise ValueError(
                    f"assert_equivariant: argument {i} of kind {kind!r} must have a node axis 0 "
                    f"when `permute=True`; got shape {shape} (use 'static' for global values)"
                )
            sizes.add(shape[0])
    if not sizes:
        raise ValueError(
            "assert_equivariant: `permute=True` needs a node-indexed argument "
            "('scalar', 'vector', 'position', 'node_mask' or 'irreps')"
        )
    if len(sizes) > 1:
        raise ValueError(
            "assert_equivariant: node-indexed arguments must share axis 0 when `permute=True`; "
            f"got sizes {sorted(sizes)} (mark per-edge arrays 'edge', globals 'static')"
        )
    return sizes.pop()


def _compare(actual, desired, rtol, atol):
    """Return (diff, relative, passed) with Frobenius norms over the arrays, in float64."""
    if jnp.shape(actual) != jnp.shape(desired):
        return np.inf, np.inf, False
    actual_dtype = jnp.asarray(actual).dtype
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(desired, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return np.inf, np.inf, False
    if not jnp.issubdtype(actual_dtype, jnp.floating):
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        return diff, diff, diff == 0.0
    diff = float(np.linalg.norm(a - b))
    ref = float(np.linalg.norm(b))
    rel = diff / ref if ref > 0 else diff
    return diff, rel, diff <= rtol * ref + atol


def assert_equivariant(
    f: Callable,
    key: PRNGKey,
    args: Sequence[Any],
    *,
    in_kinds: Sequence[str],
    out_kinds: str | Sequence[str],
    group: str = "E3",
    permute: bool = False,
    n_trials: int = 3,
    rtol: float | None = None,
    atol: float | None = None,
    cond: float = _NETWORK_COND,
    matmul_precision: str | None = "highest",
) -> float:
    r"""Check :math:`f(g \cdot \text{args}) = g \cdot f(\text{args})` for random group elements.

    Each trial samples a Haar-random orthogonal matrix :math:`R` (``random_orthogonal``; for
    ``"O3"``/``"E3"`` trials alternate between determinant :math:`-1` and :math:`+1`, starting
    with a reflection), a Gaussian translation :math:`t` (``"SE3"``/``"E3"``; scaled by the RMS
    of the ``"position"`` arguments) and, with ``permute=True``, a uniform node permutation
    :math:`\pi` (``random_permutation``). They act on every argument and output by kind:

    .. math::

        \text{scalar: } h \mapsto h_\pi, \quad
        \text{vector: } v \mapsto v_\pi R^\top, \quad
        \text{position: } x \mapsto x_\pi R^\top + t, \quad
        \text{index: } s \mapsto \pi^{-1}(s), \quad
        \text{node\_mask: } m \mapsto m_\pi,

    ``"edge"``, ``"static"`` and ``"graph_scalar"`` are unchanged, ``"graph_vector"``
    rotates (:math:`u \mapsto u R^\top`) without permutation. ``"irreps"`` (node-indexed)
    and ``"graph_irreps"`` (not permuted) arguments and outputs are pytrees of
    :class:`~geomjax.equivariant.IrrepsArray`: their irreps say how they transform,
    :math:`h \mapsto h_\pi D(R)^\top` with :math:`D` the block-diagonal Wigner matrix of the
    irreps (``irreps_wigner_d``), parity included when :math:`\det R = -1` (a ``0o`` flips
    sign under a reflection, a ``1e`` does not), and no translation; plain ``(..., 3)``
    position arrays alongside them keep the ``"position"`` kind and rotate as vectors. Node-indexed kinds are permuted
    along axis 0 only when ``permute=True``; ``"index"`` values outside ``[0, N)`` (padding
    sentinels) are kept. Rotations act on the last axis, which has size :math:`d` taken from
    the ``"vector"``/``"position"``/``"graph_vector"`` arguments (any :math:`d`; the group
    names say 3). Arguments may be pytrees; the kind applies to every leaf.

    An output passes when :math:`\|f(g\cdot a) - g\cdot f(a)\| \le \text{rtol}\,
    \|g\cdot f(a)\| + \text{atol}` (Frobenius norms in float64, per output leaf); integer
    outputs must match exactly; NaN or inf always fails.

    The default ``rtol`` is a round-off bound, ``rounding_tolerance`` of the output's dtype:

    .. math::

        \text{rtol} = 4\, \varepsilon\, \sqrt{n}\, \kappa,

    with :math:`\varepsilon` the epsilon of the matrix products at ``matmul_precision``
    (``matmul_eps``; :math:`2^{-23}` in float32, :math:`2^{-52}` in float64), :math:`n` the
    number of float entries in the non-``"static"`` arguments and :math:`\kappa` = ``cond``.
    Both evaluations of ``f`` round differently (the transformed inputs are rounded, and sums
    over nodes or flattened coordinates run in another order), so each differs from the exact
    value by its forward error: a first layer or node sum over :math:`n` inputs accumulates
    :math:`\sqrt{n}` roundings (random-rounding model), which later layers amplify by the
    network's condition number. ``cond = 16`` is the budget of a *well-conditioned* network,
    e.g. hidden widths up to 256 (:math:`\sqrt{256}` roundings per hidden dot product) or four
    layers each amplifying relative errors at most twofold; ``4`` is the safety factor. For
    :math:`n = 18` float32 inputs this is :math:`3.2 \cdot 10^{-5}`; a broken equivariance
    shows as an :math:`O(1)` relative error. Pass a larger ``cond`` (with its reason) for
    ill-conditioned functions, e.g. frames from nearly parallel vectors.

    Args:
      f: function ``f(*args)`` returning one output (pytree) or a tuple of outputs.
      key: PRNG key for the group elements.
      args: the arguments of ``f``.
      in_kinds: one kind per argument, from ``"scalar"``, ``"vector"``, ``"position"``,
        ``"edge"``, ``"index"``, ``"static"``, ``"node_mask"``, ``"graph_scalar"``,
        ``"graph_vector"``, ``"irreps"``, ``"graph_irreps"``.
      out_kinds: one kind (single output) or a sequence with one kind per output of ``f``.
      group: ``"SO3"`` (rotations), ``"O3"`` (rotations and reflections), ``"SE3"``,
        ``"E3"`` (plus translations) or ``"none"`` (permutations only).
      permute: also permute the nodes.
      n_trials: number of random group elements.
      rtol: relative tolerance; default the round-off bound above, per output leaf's dtype.
      atol: absolute tolerance, for outputs that are (close to) zero; default 0.
      cond: condition-number budget of ``f`` in the default ``rtol``, ``>= 1``.
      matmul_precision: ``jax.default_matmul_precision`` under which ``f`` runs
        (``"highest"``: float32 products in float32 on every backend, so the check does not
        measure TF32 or bfloat16 round-off on GPUs and TPUs); ``None`` keeps the caller's
        setting, and the default ``rtol`` then uses that precision's epsilon.

    Returns:
      The largest relative error :math:`\|f(g\cdot a) - g\cdot f(a)\| / \|g\cdot f(a)\|`
      over trials and outputs (the absolute error where the reference is zero).

    Raises:
      AssertionError: naming the output, its kind, the trial and the error, if any trial fails.
      ValueError: for unknown kinds or groups, mismatched lengths or dimensions.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.random.normal(jax.random.key(0), (5, 3))
      >>> centre = lambda x: x - x.mean(axis=0)
      >>> err = assert_equivariant(centre, jax.random.key(1), (x,),
      ...                          in_kinds=("position",), out_kinds="vector")
      >>> err < 1e-5
      True
      >>> shift = lambda x: x + jnp.array([1.0, 0.0, 0.0])
      >>> assert_equivariant(shift, jax.random.key(1), (x,), in_kinds=("position",),
      ...                    out_kinds="position")
      Traceback (most recent call last):
      ...
      AssertionError: assert_equivariant: output 0 (kind 'position') is not equivariant ...

      Irreps arrays transform by their irreps (a pseudoscalar ``0o`` changes sign under
      reflections, so the triple product of three vectors passes under ``"O3"``):

      >>> from geomjax.equivariant import IrrepsArray
      >>> def triple(v):
      ...     return IrrepsArray("0o", jnp.linalg.det(v.array.reshape(3, 3))[None])
      >>> v = IrrepsArray("3x1o", jax.random.normal(jax.random.key(2), (9,)))
      >>> err = assert_equivariant(triple, jax.random.key(3), (v,), in_kinds=("graph_irreps",),
      ...                          out_kinds="graph_irreps", group="O3")
      >>> err < 1e-5
      True

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021. arXiv:2102.09844.
    """
    fn = "assert_equivariant"
    args = tuple(args)
    in_kinds = tuple(in_kinds)
    if len(in_kinds) != len(args):
        raise ValueError(
            f"{fn}: argument `in_kinds` must have one kind per argument ({len(args)}); "
            f"got {len(in_kinds)}"
        )
    _check_kinds("in_kinds", in_kinds)
    single = isinstance(out_kinds, str)
    out_kinds_t = (out_kinds,) if single else tuple(out_kinds)
    _check_kinds("out_kinds", out_kinds_t)
    if group not in _GROUPS:
        raise ValueError(f"{fn}: argument `group` must be one of {_GROUPS}; got {group!r}")
    if not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"{fn}: argument `n_trials` must be a positive int; got {n_trials!r}")
    if isinstance(cond, bool) or not isinstance(cond, (int, float, np.floating)) or not cond >= 1:
        raise ValueError(f"{fn}: argument `cond` must be a real number >= 1; got {cond!r}")
    if matmul_precision is not None:
        try:
            matmul_eps(jnp.float32, matmul_precision)
        except ValueError as err:
            raise ValueError(
                f"{fn}: argument `matmul_precision` must be None or a precision accepted by "
                f"jax.default_matmul_precision; got {matmul_precision!r}"
            ) from err
    dim, rot_dtype, scale = _geometry_of_args(args, in_kinds)
    if group != "none" and dim is None:
        raise ValueError(
            f"{fn}: group {group!r} needs a 'vector', 'position', 'graph_vector', 'irreps' or "
            "'graph_irreps' argument"
        )
    if group == "none" and not permute:
        raise ValueError(f"{fn}: group 'none' with `permute=False` tests nothing")
    n_nodes = _num_nodes(args, in_kinds) if permute else None
    n_inputs = _input_size(args, in_kinds)

    def default_rtol(dt) -> float:
        if not jnp.issubdtype(dt, jnp.floating):
            return 0.0
        unit = matmul_eps(dt, matmul_precision)
        return rounding_tolerance(dt, n_ops=n_inputs, cond=cond, eps=unit)

    def call(*a):
        if matmul_precision is None:
            return f(*a)
        with jax.default_matmul_precision(matmul_precision):
            return f(*a)

    def outputs_of(result):
        if single:
            return (result,)
        if not isinstance(result, (tuple, list)) or len(result) != len(out_kinds_t):
            raise ValueError(
                f"{fn}: `f` must return a tuple of {len(out_kinds_t)} outputs to match "
                f"`out_kinds`; got {type(result).__name__}"
            )
        return tuple(result)

    base = outputs_of(call(*args))
    worst = 0.0
    for trial, k in enumerate(jax.random.split(key, n_trials)):
        k_rot, k_trans, k_perm = jax.random.split(k, 3)
        rot = trans = perm = inv_perm = None
        if group != "none":
            reflect = group in ("O3", "E3") and trial % 2 == 0
            rot = random_rotation(k_rot, dim, rot_dtype)
            if reflect:
                rot = rot.at[:, 0].multiply(-1.0)
        if group in ("SE3", "E3"):
            trans = scale * jax.random.normal(k_trans, (dim,), dtype=rot_dtype)
        if permute:
            perm = random_permutation(k_perm, n_nodes)
            inv_perm = jnp.argsort(perm).astype(jnp.int32)
        g_args = tuple(
            _transform(a, kind, rot, trans, perm, inv_perm) for a, kind in zip(args, in_kinds)
        )
        got = outputs_of(call(*g_args))
        for j, (out, want_base, kind) in enumerate(zip(got, base, out_kinds_t)):
            want = _transform(want_base, kind, rot, trans, perm, inv_perm)
            got_leaves, want_leaves = jax.tree.leaves(out), jax.tree.leaves(want)
            if len(got_leaves) != len(want_leaves):
                raise AssertionError(f"{fn}: output {j} changed its pytree structure")
            for a, b in zip(got_leaves, want_leaves):
                dt = jnp.asarray(b).dtype
                r = rtol if rtol is not None else default_rtol(dt)
                at = 0.0 if atol is None else atol
                diff, rel, ok = _compare(a, b, r, at)
                worst = max(worst, rel)
                if not ok:
                    what = (
                        f"rotation det {float(jnp.linalg.det(rot)):+.0f}" if rot is not None else ""
                    )
                    if trans is not None:
                        what += ", translation"
                    if perm is not None:
                        what += (", " if what else "") + "permutation"
                    raise AssertionError(
                        f"{fn}: output {j} (kind {kind!r}) is not equivariant under group "
                        f"{group!r}{' with permutations' if permute else ''}: trial {trial} "
                        f"({what}): error {diff:.3e} (relative {rel:.3e}) > rtol {r:.1e} * "
                        f"|reference| + atol {at:.1e}"
                    )
    return worst
