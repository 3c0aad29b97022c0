"""Charged-particle N-body simulator of the EGNN paper's N-body benchmark, in JAX.

A port of the ``ChargedParticlesSim`` data generator (Kipf et al., NRI, ICML 2018) as used by
Satorras et al. for the EGNN N-body experiment: ``N`` particles with charges :math:`\\pm 1`
interacting through Coulomb forces, integrated with the same kick-drift loop and the same
per-component force clipping. The whole simulation is one ``jax.lax.scan`` (frames) over a
``fori_loop`` (steps between frames), vmapped over samples.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from geomjax._core import Array, ArrayLike, PRNGKey, as_float_array, check_ndim


def _check_int(fn: str, name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{fn}: argument `{name}` must be an int >= {minimum}; got {value!r}")


def coulomb_forces(
    loc: ArrayLike, charges: ArrayLike, *, interaction_strength: float = 1.0
) -> Array:
    r"""Coulomb forces on every particle (unclipped), NaN-free at coincident points.

    .. math::

        F_i = k \sum_{j \ne i} q_i q_j \frac{x_i - x_j}{\|x_i - x_j\|^3}

    Like charges repel. Pairs closer than :math:`\text{tiny}^{1/6}` of the dtype (coincident
    points) contribute zero instead of an infinite force; the diagonal :math:`j = i` is
    masked explicitly.

    Args:
      loc: ``(N, d)`` positions :math:`x`.
      charges: ``(N, 1)`` or ``(N,)`` charges :math:`q`.
      interaction_strength: :math:`k`.

    Returns:
      ``(N, d)`` forces :math:`F`.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
      >>> coulomb_forces(x, jnp.array([1.0, -1.0]))  # opposite charges attract: 1 / 2^2
      Array([[ 0.25,  0.  ,  0.  ],
             [-0.25,  0.  ,  0.  ]], dtype=float32)
    """
    fn = "coulomb_forces"
    loc = as_float_array(fn, "loc", loc)
    check_ndim(fn, "loc", loc, 2)
    q = jnp.reshape(jnp.asarray(charges, loc.dtype), (-1,))
    if q.shape[0] != loc.shape[0]:
        raise ValueError(
            f"{fn}: argument `charges` must have N = {loc.shape[0]} entries; got shape "
            f"{jnp.shape(charges)}"
        )
    diff = loc[:, None, :] - loc[None, :, :]  # x_i - x_j
    d2 = jnp.sum(diff**2, axis=-1)
    min_d2 = float(np.finfo(np.dtype(loc.dtype)).tiny) ** (1.0 / 3.0)
    # Mask the diagonal explicitly: under jit XLA may recompute x_i twice with different
    # rounding, so x_i - x_i is not always exactly 0.
    off_diagonal = ~jnp.eye(loc.shape[0], dtype=bool)
    apart = off_diagonal & (d2 > min_d2)
    inv_r3 = jnp.where(apart, jnp.where(apart, d2, 1.0) ** -1.5, 0.0)
    size = interaction_strength * (q[:, None] * q[None, :]) * inv_r3
    return jnp.sum(size[:, :, None] * diff, axis=1)


def charged_particles_energy(
    loc: ArrayLike, vel: ArrayLike, charges: ArrayLike, *, interaction_strength: float = 1.0
) -> Array:
    r"""Total energy of one state: kinetic plus Coulomb potential (unit masses).

    .. math::

        E = \tfrac12 \sum_i \|v_i\|^2 + \tfrac{k}{2} \sum_{i \ne j} \frac{q_i q_j}{\|x_i - x_j\|}

    Args:
      loc: ``(N, d)`` positions.
      vel: ``(N, d)`` velocities.
      charges: ``(N, 1)`` or ``(N,)`` charges.
      interaction_strength: :math:`k`.

    Returns:
      Scalar energy (coincident pairs contribute zero potential).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [2.0, 0.0]])
      >>> v = jnp.array([[1.0, 0.0], [0.0, 0.0]])
      >>> charged_particles_energy(x, v, jnp.array([1.0, 1.0]))  # 0.5 + 1 / 2
      Array(1., dtype=float32)
    """
    fn = "charged_particles_energy"
    loc = as_float_array(fn, "loc", loc)
    check_ndim(fn, "loc", loc, 2)
    vel = jnp.asarray(vel, loc.dtype)
    q = jnp.reshape(jnp.asarray(charges, loc.dtype), (-1,))
    d2 = jnp.sum((loc[:, None, :] - loc[None, :, :]) ** 2, axis=-1)
    apart = ~jnp.eye(loc.shape[0], dtype=bool) & (d2 > 0)
    inv_r = jnp.where(apart, jnp.where(apart, d2, 1.0) ** -0.5, 0.0)
    potential = 0.5 * interaction_strength * jnp.sum(q[:, None] * q[None, :] * inv_r)
    return 0.5 * jnp.sum(vel**2) + potential


def simulate_charged_particles(
    loc: ArrayLike,
    vel: ArrayLike,
    charges: ArrayLike,
    *,
    n_steps: int = 5000,
    save_every: int = 100,
    dt: float = 0.001,
    interaction_strength: float = 1.0,
    max_force: float = 100.0,
) -> tuple[Array, Array]:
    r"""Integrate one charged-particle system from given initial conditions.

    The kick-drift loop of NRI's ``ChargedParticlesSim`` (symplectic Euler), with the force
    clipped per component to :math:`[-F_{max}, F_{max}]`:

    .. math::

        v \leftarrow v_0 + \Delta t\, \operatorname{clip}(F(x_0)); \qquad
        \text{for } s = 1, \dots, S:\quad x \leftarrow x + \Delta t\, v,\ \
        [\text{save } (x, v) \text{ if } s \equiv 0 \bmod \text{save\_every}],\ \
        v \leftarrow v + \Delta t\, \operatorname{clip}(F(x))

    with :math:`F` from :func:`coulomb_forces`. Frame :math:`t` is the state after step
    :math:`(t + 1)\,\text{save\_every}`, as in the original data (whose first saved frame
    overwrites the initial state), so frames 30 and 40 are the EGNN inputs and targets.
    The clipping acts per Cartesian component, as in the original, so a step where it is
    active is not exactly rotation-equivariant.

    Args:
      loc: ``(N, d)`` initial positions.
      vel: ``(N, d)`` initial velocities.
      charges: ``(N, 1)`` or ``(N,)`` charges.
      n_steps: number of integration steps :math:`S`.
      save_every: steps between saved frames.
      dt: step :math:`\Delta t`.
      interaction_strength: Coulomb constant :math:`k`.
      max_force: :math:`F_{max}` (the original: ``0.1 / 0.001 = 100``).

    Returns:
      ``(loc, vel)``, each ``(T, N, d)`` with ``T = n_steps // save_every``.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
      >>> v = jnp.zeros((2, 3))
      >>> locs, vels = simulate_charged_particles(x, v, jnp.ones((2, 1)), n_steps=20,
      ...                                         save_every=10)
      >>> locs.shape, bool(locs[-1, 1, 0] > 3.0)  # like charges repel
      ((2, 2, 3), True)

    References:
      T. Kipf, E. Fetaya, K.-C. Wang, M. Welling, R. Zemel, "Neural Relational Inference for
      Interacting Systems", ICML 2018. arXiv:1802.04687.
    """
    fn = "simulate_charged_particles"
    _check_int(fn, "n_steps", n_steps)
    _check_int(fn, "save_every", save_every)
    if n_steps < save_every:
        raise ValueError(
            f"{fn}: argument `n_steps` must be >= `save_every` ({save_every}); got {n_steps}"
        )
    loc = as_float_array(fn, "loc", loc)
    check_ndim(fn, "loc", loc, 2)
    vel = as_float_array(fn, "vel", vel)
    if vel.shape != loc.shape:
        raise ValueError(f"{fn}: argument `vel` must have shape {loc.shape}; got {vel.shape}")
    q = jnp.reshape(jnp.asarray(charges, loc.dtype), (-1, 1))
    if q.shape[0] != loc.shape[0]:
        raise ValueError(
            f"{fn}: argument `charges` must have N = {loc.shape[0]} entries; got shape "
            f"{jnp.shape(charges)}"
        )
    dtype = loc.dtype
    dt_ = jnp.asarray(dt, dtype)

    def force(x):
        f = coulomb_forces(x, q, interaction_strength=interaction_strength)
        return jnp.clip(f, -max_force, max_force)

    def kick_drift(_, state):
        x, v = state
        v = v + dt_ * force(x)
        return x + dt_ * v, v

    def frame(state, _):
        x, v = state
        x = x + dt_ * v  # first drift of this frame's steps
        x, v = jax.lax.fori_loop(0, save_every - 1, kick_drift, (x, v))
        saved = (x, v)
        v = v + dt_ * force(x)
        return (x, v), saved

    v0 = vel.astype(dtype) + dt_ * force(loc)
    _, (locs, vels) = jax.lax.scan(frame, (loc, v0), None, length=n_steps // save_every)
    return locs, vels


def _initial_conditions(key, n_particles, dim, loc_std, vel_norm, dtype):
    """Positions N(0, loc_std^2), velocities of norm vel_norm in uniform directions, q = +-1."""
    k_loc, k_vel, k_q = jax.random.split(key, 3)
    loc = loc_std * jax.random.normal(k_loc, (n_particles, dim), dtype)
    v = jax.random.normal(k_vel, (n_particles, dim), dtype)
    sq = jnp.sum(v**2, axis=-1, keepdims=True)
    ok = sq > 0
    v = jnp.where(ok, v * vel_norm * jax.lax.rsqrt(jnp.where(ok, sq, 1.0)), 0.0)
    charges = jnp.where(jax.random.bernoulli(k_q, 0.5, (n_particles, 1)), 1.0, -1.0)
    return loc, v, charges.astype(dtype)


@functools.partial(
    jax.jit,
    static_argnames=(
        "n_samples",
        "n_particles",
        "dim",
        "n_steps",
        "save_every",
        "dt",
        "loc_std",
        "vel_norm",
        "interaction_strength",
        "max_force",
        "dtype",
    ),
)
def _charged_particles(
    key,
    n_samples,
    n_particles,
    dim,
    n_steps,
    save_every,
    dt,
    loc_std,
    vel_norm,
    interaction_strength,
    max_force,
    dtype,
):
    def one(k):
        loc0, vel0, q = _initial_conditions(k, n_particles, dim, loc_std, vel_norm, dtype)
        loc, vel = simulate_charged_particles(
            loc0,
            vel0,
            q,
            n_steps=n_steps,
            save_every=save_every,
            dt=dt,
            interaction_strength=interaction_strength,
            max_force=max_force,
        )
        return loc, vel, q

    return jax.vmap(one)(jax.random.split(key, n_samples))


def charged_particles(
    key: PRNGKey,
    n_samples: int,
    *,
    n_particles: int = 5,
    dim: int = 3,
    n_steps: int = 5000,
    save_every: int = 100,
    dt: float = 0.001,
    loc_std: float = 1.0,
    vel_norm: float = 0.5,
    interaction_strength: float = 1.0,
    max_force: float = 100.0,
    dtype=None,
) -> tuple[Array, Array, Array]:
    r"""Sample trajectories of the EGNN N-body benchmark (charged particles), vmapped.

    Each sample draws charges :math:`q_i \in \{-1, +1\}` uniformly, positions
    :math:`x_i \sim \mathcal N(0, \sigma^2 I_d)` with
    :math:`\sigma = \text{loc\_std}\,(N / 5)^{1/3}` (constant density, as in the original),
    and velocities of norm ``vel_norm`` in uniformly random directions, then integrates
    :func:`simulate_charged_particles` (Coulomb forces, per-component clipping to
    :math:`\pm F_{max}`, no box):

    .. math::

        \ddot x_i = \operatorname{clip}\Big(k \sum_{j \ne i} q_i q_j
            \frac{x_i - x_j}{\|x_i - x_j\|^3}, \pm F_{max}\Big)

    The defaults are the EGNN paper's ``nbody_small`` data (5 particles in 3-D, 5000 steps of
    0.001 saved every 100); ``nbody_egnn_split`` takes frame 30 as input and 40 as target.

    Args:
      key: PRNG key (one independent sub-key per sample).
      n_samples: number of trajectories :math:`S`.
      n_particles: particles per system :math:`N`.
      dim: spatial dimension :math:`d`.
      n_steps: integration steps per trajectory.
      save_every: steps between saved frames.
      dt: integration step.
      loc_std: position scale before the :math:`(N/5)^{1/3}` factor.
      vel_norm: initial speed of every particle.
      interaction_strength: Coulomb constant :math:`k`.
      max_force: per-component force clip :math:`F_{max}`.
      dtype: float dtype (default: float64 if x64 is enabled, else float32).

    Returns:
      ``(loc, vel, charges)`` with shapes ``(S, T, N, d)``, ``(S, T, N, d)``, ``(S, N, 1)``,
      ``T = n_steps // save_every``.

    Examples:
      >>> import jax
      >>> loc, vel, q = charged_particles(jax.random.key(0), 4, n_steps=300)
      >>> loc.shape, vel.shape, q.shape
      ((4, 3, 5, 3), (4, 3, 5, 3), (4, 5, 1))

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021. arXiv:2102.09844.

      T. Kipf, E. Fetaya, K.-C. Wang, M. Welling, R. Zemel, "Neural Relational Inference for
      Interacting Systems", ICML 2018. arXiv:1802.04687.
    """
    fn = "charged_particles"
    for name, value in (
        ("n_samples", n_samples),
        ("n_particles", n_particles),
        ("dim", dim),
        ("n_steps", n_steps),
        ("save_every", save_every),
    ):
        _check_int(fn, name, value)
    if n_steps < save_every:
        raise ValueError(
            f"{fn}: argument `n_steps` must be >= `save_every` ({save_every}); got {n_steps}"
        )
    for name, value in (("dt", dt), ("loc_std", loc_std), ("max_force", max_force)):
        if not float(value) > 0:
            raise ValueError(f"{fn}: argument `{name}` must be positive; got {value!r}")
    if dtype is None:
        dtype = jnp.zeros(()).dtype  # float64 under x64, else float32
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{fn}: argument `dtype` must be a float dtype; got {dtype}")
    std = float(loc_std) * (n_particles / 5.0) ** (1.0 / 3.0)
    return _charged_particles(
        key,
        int(n_samples),
        int(n_particles),
        int(dim),
        int(n_steps),
        int(save_every),
        float(dt),
        std,
        float(vel_norm),
        float(interaction_strength),
        float(max_force),
        dtype,
    )


class NBodyExamples(NamedTuple):
    """Inputs and targets of the N-body task: positions and velocities at ``frame_in``
    (``(S, N, d)`` each), charges ``(S, N, 1)``, and target positions at ``frame_out``."""

    loc: Array
    vel: Array
    charges: Array
    target: Array


def nbody_egnn_split(
    loc: ArrayLike, vel: ArrayLike, charges: ArrayLike, frame_in: int = 30, frame_out: int = 40
) -> NBodyExamples:
    r"""The EGNN N-body task: predict positions at ``frame_out`` from the state at ``frame_in``.

    .. math::

        (x^{(t_0)}, v^{(t_0)}, q) \mapsto x^{(t_1)}, \qquad t_0 = \text{frame\_in},\
        t_1 = \text{frame\_out}

    Args:
      loc: ``(S, T, N, d)`` trajectories from :func:`charged_particles`.
      vel: ``(S, T, N, d)`` velocities.
      charges: ``(S, N, 1)`` charges.
      frame_in: input frame :math:`t_0` (EGNN ``nbody_small``: 30).
      frame_out: target frame :math:`t_1` (40).

    Returns:
      ``NBodyExamples(loc, vel, charges, target)``: ``(S, N, d)``, ``(S, N, d)``,
      ``(S, N, 1)``, ``(S, N, d)``.

    Examples:
      >>> import jax
      >>> loc, vel, q = charged_particles(jax.random.key(0), 2, n_steps=500)
      >>> ex = nbody_egnn_split(loc, vel, q, frame_in=1, frame_out=4)
      >>> ex.loc.shape, ex.target.shape
      ((2, 5, 3), (2, 5, 3))

    References:
      V. G. Satorras, E. Hoogeboom, M. Welling, "E(n) Equivariant Graph Neural Networks",
      ICML 2021. arXiv:2102.09844.
    """
    fn = "nbody_egnn_split"
    loc = as_float_array(fn, "loc", loc)
    check_ndim(fn, "loc", loc, 4)
    vel = as_float_array(fn, "vel", vel)
    if vel.shape != loc.shape:
        raise ValueError(f"{fn}: argument `vel` must have shape {loc.shape}; got {vel.shape}")
    charges = jnp.asarray(charges, loc.dtype)
    n_frames = loc.shape[1]
    for name, frame in (("frame_in", frame_in), ("frame_out", frame_out)):
        if not isinstance(frame, (int, np.integer)) or not 0 <= frame < n_frames:
            raise ValueError(
                f"{fn}: argument `{name}` must be an int in [0, {n_frames}); got {frame!r}"
            )
    return NBodyExamples(loc[:, frame_in], vel[:, frame_in], charges, loc[:, frame_out])
