"""Charged-particle simulator: NumPy reference loop, energy, clipping, equivariance, shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.datasets._charged_particles import (
    _initial_conditions,
    charged_particles,
    charged_particles_energy,
    coulomb_forces,
    nbody_egnn_split,
    simulate_charged_particles,
)
from geomjax.testing._equivariance import assert_equivariant


def np_forces(x, q, k=1.0):
    """Coulomb forces by an explicit double loop (float64)."""
    n = x.shape[0]
    f = np.zeros_like(x)
    for i in range(n):
        for j in range(n):
            if i != j:
                r = x[i] - x[j]
                f[i] += k * q[i] * q[j] * r / np.linalg.norm(r) ** 3
    return f


def np_energy(x, v, q):
    n = x.shape[0]
    u = sum(q[i] * q[j] / np.linalg.norm(x[i] - x[j]) for i in range(n) for j in range(n) if i != j)
    return 0.5 * np.sum(v**2) + 0.5 * u


def np_simulate(x, v, q, n_steps, save_every, dt, max_f=100.0):
    """The NRI ChargedParticlesSim loop (kick, then drift/save/kick), in float64 NumPy."""
    x, v = x.copy(), v.copy()
    v += dt * np.clip(np_forces(x, q), -max_f, max_f)
    locs, vels = [], []
    for i in range(1, n_steps + 1):
        x += dt * v
        if i % save_every == 0:
            locs.append(x.copy())
            vels.append(v.copy())
        v += dt * np.clip(np_forces(x, q), -max_f, max_f)
    return np.stack(locs), np.stack(vels)


def _separated(dtype=jnp.float32):
    """5 charges on a well-separated configuration: forces stay far below the clip."""
    x = np.array([[0, 0, 0], [3, 0, 0], [0, 3.5, 0], [0, 0, 4], [3, 3, 3]], np.float64)
    v = np.array([[0.3, 0, 0.1], [0, -0.2, 0], [0.1, 0.1, 0], [0, 0, 0.4], [-0.2, 0, 0]])
    q = np.array([1.0, -1.0, 1.0, 1.0, -1.0])
    return jnp.asarray(x, dtype), jnp.asarray(v, dtype), jnp.asarray(q[:, None], dtype)


def test_forces_and_energy_match_loops(x64, key):
    x = np.asarray(jax.random.normal(key, (6, 3), jnp.float64)) * 2
    v = np.asarray(jax.random.normal(jax.random.key(1), (6, 3), jnp.float64))
    q = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
    np.testing.assert_allclose(coulomb_forces(x, q[:, None]), np_forces(x, q), rtol=1e-12)
    np.testing.assert_allclose(charged_particles_energy(x, v, q), np_energy(x, v, q), rtol=1e-12)
    # coincident points: zero force between them, no NaN (debug_nans is on).
    xc = x.copy()
    xc[1] = xc[0]
    f = np.asarray(coulomb_forces(xc, q[:, None]))
    assert np.all(np.isfinite(f))
    # particle 0 feels everyone but its twin 1: the forces of the system without particle 1.
    np.testing.assert_allclose(f[0], np_forces(np.delete(xc, 1, 0), np.delete(q, 1))[0], rtol=1e-12)
    np.testing.assert_allclose(
        f[2:],
        np_forces(xc[[0, 2, 3, 4, 5]] * 0 + xc[[0, 2, 3, 4, 5]], q[[0, 2, 3, 4, 5]])[1:]
        + np_forces(xc[[1, 2, 3, 4, 5]], q[[1, 2, 3, 4, 5]])[1:]
        - np_forces(xc[2:], q[2:]),
        rtol=1e-10,
    )


def test_trajectory_matches_numpy_reference(x64, key):
    x0, v0, q = _initial_conditions(key, 5, 3, 1.0, 0.5, jnp.float64)
    locs, vels = simulate_charged_particles(x0, v0, q, n_steps=300, save_every=100)
    ref_l, ref_v = np_simulate(np.asarray(x0), np.asarray(v0), np.asarray(q)[:, 0], 300, 100, 1e-3)
    assert locs.shape == (3, 5, 3)
    np.testing.assert_allclose(locs, ref_l, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vels, ref_v, rtol=1e-10, atol=1e-12)


def test_initial_conditions(x64, key):
    keys = jax.random.split(key, 2000)
    x, v, q = jax.vmap(lambda k: _initial_conditions(k, 5, 3, 1.0, 0.5, jnp.float64))(keys)
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 0.5, rtol=1e-12)
    assert set(np.unique(q).tolist()) == {-1.0, 1.0}
    # Monte Carlo with 10000 draws: std errors ~0.01 (charge mean), ~0.006 (position std).
    assert abs(float(np.mean(q))) < 0.05
    assert abs(float(np.std(x)) - 1.0) < 0.03
    assert abs(float(np.mean(v))) < 0.02


def test_energy_conserved_without_clipping(x64):
    x, v, q = _separated(jnp.float64)
    dt = 1e-4
    locs, vels = simulate_charged_particles(x, v, q, n_steps=4000, save_every=200, dt=dt)
    locs, vels, qn = np.asarray(locs), np.asarray(vels), np.asarray(q)[:, 0]
    forces = np.stack([np_forces(xx, qn) for xx in locs])
    assert np.abs(forces).max() < 10.0  # clip (100) never active
    e = np.array([np_energy(xx, vv, qn) for xx, vv in zip(locs, vels)])
    e0 = np_energy(np.asarray(x), np.asarray(v), qn)
    # Symplectic Euler: bounded O(dt) energy error, velocities staggered by dt/2.
    assert np.max(np.abs(e - e0)) < 1e-3 * abs(e0)
    assert np.max(np.abs(locs[-1] - np.asarray(x))) > 0.05  # the system did move


def test_forces_clipped(x64):
    x = jnp.array([[0.0, 0.0, 0.0], [0.01, 0.005, 0.0], [5.0, 0.0, 0.0]])
    q = jnp.array([[1.0], [-1.0], [1.0]])
    v = jnp.zeros((3, 3))
    dt = 1e-3
    _, vels = simulate_charged_particles(x, v, q, n_steps=1, save_every=1, dt=dt)
    raw = np_forces(np.asarray(x), np.asarray(q)[:, 0])
    assert np.abs(raw).max() > 1000  # far beyond the clip
    np.testing.assert_allclose(vels[0], dt * np.clip(raw, -100, 100), rtol=1e-12)
    assert np.isclose(np.abs(vels[0][0, 0]), 100 * dt)
    # A different max_force is honoured.
    _, vels = simulate_charged_particles(x, v, q, n_steps=1, save_every=1, dt=dt, max_force=7.0)
    np.testing.assert_allclose(vels[0], dt * np.clip(raw, -7, 7), rtol=1e-12)


@pytest.mark.parametrize("permute", [False, True])
def test_simulator_is_e3_equivariant(dtype, permute):
    x, v, q = _separated(dtype)

    def sim(x, v, q):
        locs, vels = simulate_charged_particles(x, v, q, n_steps=200, save_every=50, dt=2e-3)
        # node axis first so that permutations act on axis 0
        return jnp.swapaxes(locs, 0, 1), jnp.swapaxes(vels, 0, 1)

    err = assert_equivariant(
        jax.jit(sim),
        jax.random.key(3),
        (x, v, q),
        in_kinds=("position", "vector", "scalar"),
        out_kinds=("position", "vector"),
        group="E3",
        permute=permute,
        # a whole integration: round-off compounds over the time steps and the dynamics amplify
        # it (measured 4e-7 in float32): 840 eps32, and 1e-9 in float64
        rtol=1e-4 if dtype == jnp.float32 else 1e-9,
    )
    assert err < (1e-4 if dtype == jnp.float32 else 1e-9)


def test_shapes_dtype_and_determinism(key):
    loc, vel, q = charged_particles(key, 3, n_steps=60, save_every=20)
    assert loc.shape == vel.shape == (3, 3, 5, 3) and q.shape == (3, 5, 1)
    assert loc.dtype == jnp.float32
    loc2, vel2, q2 = charged_particles(key, 3, n_steps=60, save_every=20)
    np.testing.assert_array_equal(loc, loc2)
    np.testing.assert_array_equal(vel, vel2)
    np.testing.assert_array_equal(q, q2)
    loc3, _, _ = charged_particles(jax.random.key(7), 3, n_steps=60, save_every=20)
    assert not np.allclose(loc, loc3)
    loc4, vel4, q4 = charged_particles(key, 2, n_particles=4, dim=2, n_steps=50, save_every=25)
    assert loc4.shape == vel4.shape == (2, 2, 4, 2) and q4.shape == (2, 4, 1)
    with jax.enable_x64(True):
        loc5, _, _ = charged_particles(key, 2, n_steps=20, save_every=20)
        assert loc5.dtype == jnp.float64


def test_samples_are_the_per_key_simulation(x64, key):
    """Each sample is simulate_charged_particles from the initial conditions of its sub-key."""
    loc, vel, q = charged_particles(key, 2, n_steps=40, save_every=20, dtype=jnp.float64)
    k1 = jax.random.split(key, 2)[1]
    x0, v0, q0 = _initial_conditions(k1, 5, 3, 1.0, 0.5, jnp.float64)
    ref_l, ref_v = np_simulate(np.asarray(x0), np.asarray(v0), np.asarray(q0)[:, 0], 40, 20, 1e-3)
    np.testing.assert_allclose(loc[1], ref_l, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vel[1], ref_v, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(q[1], q0)


def test_restart_from_saved_frame_continues_the_trajectory(key):
    """A saved (x, v) is the full integrator state: restarting from frame t reproduces t + k."""
    loc, vel, q = charged_particles(key, 1, n_steps=400, save_every=50)
    locs, vels = simulate_charged_particles(loc[0, 2], vel[0, 2], q[0], n_steps=250, save_every=50)
    np.testing.assert_allclose(locs, loc[0, 3:], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vels, vel[0, 3:], rtol=1e-6, atol=1e-6)


def test_split():
    loc = jnp.arange(2 * 5 * 3 * 2, dtype=jnp.float32).reshape(2, 5, 3, 2)
    vel = -loc
    q = jnp.ones((2, 3, 1))
    ex = nbody_egnn_split(loc, vel, q, frame_in=1, frame_out=3)
    np.testing.assert_array_equal(ex.loc, loc[:, 1])
    np.testing.assert_array_equal(ex.vel, vel[:, 1])
    np.testing.assert_array_equal(ex.target, loc[:, 3])
    np.testing.assert_array_equal(ex.charges, q)
    with pytest.raises(ValueError, match="`frame_out`"):
        nbody_egnn_split(loc, vel, q, frame_in=1, frame_out=5)
    with pytest.raises(ValueError, match="`vel`"):
        nbody_egnn_split(loc, vel[:, :2], q)


def test_bad_arguments(key):
    with pytest.raises(ValueError, match="`n_samples`"):
        charged_particles(key, 0)
    with pytest.raises(ValueError, match="`n_steps`"):
        charged_particles(key, 2, n_steps=50, save_every=100)
    with pytest.raises(ValueError, match="`dt`"):
        charged_particles(key, 2, dt=0.0)
    with pytest.raises(TypeError, match="`dtype`"):
        charged_particles(key, 2, dtype=jnp.int32)
    x, v, q = _separated()
    with pytest.raises(ValueError, match="`vel`"):
        simulate_charged_particles(x, v[:4], q)
    with pytest.raises(ValueError, match="`charges`"):
        simulate_charged_particles(x, v, q[:4])
    with pytest.raises(ValueError, match="`save_every`"):
        simulate_charged_particles(x, v, q, save_every=0)
