"""Irrep / Irreps metadata and the IrrepsArray pytree.

References: hand-computed expectations, e3nn-jax's ``Irreps`` (when installed) for the
string conventions and rearrangements, and the representation itself: rearranging data by
irrep (filter, sort, regroup, slices) must commute with the block-diagonal
``Irreps.D_from_matrix``, an independent statement that data and metadata moved together.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomjax.equivariant import (
    Irrep,
    Irreps,
    IrrepsArray,
    MulIrrep,
    concatenate,
    from_chunks,
    spherical_harmonics,
    zeros,
)
from geomjax.testing import rounding_tolerance

# -- Irrep ---------------------------------------------------------------------------------------


def test_irrep_parsing_and_properties():
    assert Irrep("1o") == Irrep(1, -1) == Irrep((1, -1)) == Irrep(Irrep("1o")) == "1o"
    assert Irrep(" 2e ") == Irrep(2, 1) and Irrep("3y") == Irrep(3, -1) and Irrep("2y") == "2e"
    assert (Irrep("2e").dim, Irrep("0e").is_scalar(), Irrep("0o").is_scalar()) == (5, True, False)
    degree, parity = Irrep("5o")
    assert (degree, parity) == (5, -1) and repr(Irrep(5, -1)) == "5o"
    assert hash(Irrep("1o")) == hash(Irrep(1, -1)) and len({Irrep("1o"), Irrep(1, -1)}) == 1
    assert Irrep("1o") * Irrep("1e") == (Irrep("0o"), Irrep("1o"), Irrep("2o"))
    assert 3 * Irrep("1e") == Irreps("3x1e") and Irrep("0e") + "1o" == Irreps("0e + 1o")
    assert pickle.loads(pickle.dumps(Irrep("4o"))) == Irrep("4o")
    with pytest.raises(AttributeError):
        Irrep("1o").l = 2


def test_irrep_order_is_e3nn_order():
    """By l; within l the harmonics' parity (-1)^l first."""
    order = ["0e", "0o", "1o", "1e", "2e", "2o", "3o", "3e"]
    shuffled = [order[i] for i in np.random.default_rng(0).permutation(len(order))]
    assert [repr(ir) for ir in sorted(Irrep(s) for s in shuffled)] == order
    assert Irrep("1e") > Irrep("1o") and Irrep("2o") >= Irrep("2e") and Irrep("0o") <= "1o"


@pytest.mark.parametrize(
    "args,exc,name",
    [
        (("1x",), ValueError, "l"),
        (("o",), ValueError, "l"),
        (("-1e",), ValueError, "l"),
        ((1, 0), ValueError, "p"),
        ((1, True), ValueError, "p"),
        ((-1, 1), ValueError, "l"),
        ((1.5, 1), TypeError, "l"),
        ((True, 1), TypeError, "l"),
        ((None,), TypeError, "l"),
    ],
)
def test_irrep_errors(args, exc, name):
    with pytest.raises(exc, match=f"`{name}`"):
        Irrep(*args)


# -- Irreps --------------------------------------------------------------------------------------


def test_irreps_parsing_sizes_equality():
    x = Irreps("16x0e + 8x1o+ 2e")
    assert x == "16x0e+8x1o+1x2e" and x == Irreps([(16, "0e"), (8, (1, -1)), "2e"])
    assert x != "16x0e" and x != "not irreps" and Irreps("") == Irreps() == Irreps(None)
    assert (x.dim, x.num_irreps, x.lmax, x.ls[:2], x.ls[-2:]) == (45, 25, 2, [0, 0], [1, 2])
    assert x.slices() == [slice(0, 16), slice(16, 40), slice(40, 45)]
    assert x[1] == MulIrrep(8, Irrep("1o")) and x[1].dim == 24 and x[1:] == "8x1o + 2e"
    assert Irreps(repr(x)) == x and pickle.loads(pickle.dumps(x)) == x
    assert hash(x) == hash(Irreps(str(x))) and {x: 1}[Irreps("16x0e+8x1o+2e")] == 1
    assert repr(Irreps()) == "Irreps()" and Irreps("0x1o").dim == 0 and Irreps("0x1o").ls == []
    with pytest.raises(ValueError, match="no irrep"):
        _ = Irreps("0x1o").lmax
    assert "1o" in x and "3o" not in x and x.count("1o") == 8 and x.count(Irrep("1e")) == 0
    assert Irreps("2x0e + 0e").is_scalar() and not Irreps("0e + 0o").is_scalar()
    assert Irreps.spherical_harmonics(3) == "0e + 1o + 2e + 3o"
    assert Irreps.spherical_harmonics(2, p=1) == "0e + 1e + 2e"


@pytest.mark.parametrize(
    "text", ["1x", "x1o", "2x3q", "-1x0e", "1.5x0e", "1o+", "+", "16x0e 8x1o", "1o 1o", "2 x"]
)
def test_irreps_bad_strings(text):
    with pytest.raises(ValueError, match="`irreps`"):
        Irreps(text)


@pytest.mark.parametrize(
    "bad", [[(-1, "0e")], [(1.5, "0e")], [(1, "9q")], [3.0], {"0e": 1}, 12, [(1, 2, 3)]]
)
def test_irreps_bad_entries(bad):
    with pytest.raises(ValueError, match="`irreps`"):
        Irreps(bad)


def test_irreps_rearrangements():
    x = Irreps("2o + 1e + 0e + 1e + 0x3e")
    s = x.sort()
    assert s.irreps == "0e + 1e + 1e + 2o + 0x3e"
    assert s.p == (3, 1, 0, 2, 4) and s.inv == (2, 1, 3, 0, 4)
    assert all(s.irreps[s.p[i]] == x[i] for i in range(len(x)))
    assert x.regroup() == "0e + 2x1e + 2o"
    assert Irreps("1e + 1e + 0e + 0x2e + 1e + 0x1o + 1e").simplify() == "2x1e + 0e + 2x1e"
    assert x.filter(keep="1e + 0e") == "1e + 0e + 1e" and x.filter("1e") == "1e + 1e"
    assert x.filter(keep=["2o", Irrep("3e")]) == "2o + 0x3e"
    assert x.filter(drop="1e") == "2o + 0e + 0x3e" and x.filter(lmax=1) == "1e + 0e + 1e"
    assert x.filter(keep=lambda mi: mi.ir.l == 2) == "2o" and x.filter() == x
    with pytest.raises(ValueError, match="at most one"):
        x.filter(keep="0e", lmax=1)
    with pytest.raises(ValueError, match="`keep`"):
        x.filter(keep="zz")
    with pytest.raises(TypeError, match="`lmax`"):
        x.filter(lmax=1.5)
    y = Irreps("2x1o + 3x0e")
    assert y.slice_by_mul[1:4] == "1o + 2x0e" and y.slice_by_mul[:] == y
    assert y.slice_by_mul[5:2] == Irreps()
    assert y + "2e" == "2x1o + 3x0e + 2e" and "2e" + y == "2e + 2x1o + 3x0e"
    assert 2 * y == y * 2 == "4x1o + 6x0e" and 0 * y == "0x1o + 0x0e"
    with pytest.raises(TypeError):
        y * y
    with pytest.raises(TypeError):
        y * 1.5


def test_irreps_match_e3nn():
    e3nn = pytest.importorskip("e3nn_jax")
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = rng.integers(0, 6)
        text = "+".join(
            f"{rng.integers(0, 4)}x{rng.integers(0, 4)}{'eo'[rng.integers(2)]}" for _ in range(n)
        )
        ours, theirs = Irreps(text), e3nn.Irreps(text)
        assert repr(ours) == repr(theirs) and ours.dim == theirs.dim and ours.ls == theirs.ls
        assert repr(ours.simplify()) == repr(theirs.simplify())
        assert repr(ours.regroup()) == repr(theirs.regroup())
        s, t = ours.sort(), theirs.sort()
        assert (repr(s.irreps), s.p, s.inv) == (repr(t.irreps), tuple(t.p), tuple(t.inv))
        assert repr(ours.filter(keep="0e + 1o")) == repr(theirs.filter(keep="0e + 1o"))
        assert repr(ours.filter(lmax=1)) == repr(theirs.filter(lmax=1))
        if ours.num_irreps >= 2:  # (e3nn may keep a 0x entry at the edge: compare simplified)
            got, want = ours.slice_by_mul[1:-1], theirs.slice_by_mul[1:-1]
            assert repr(got.simplify()) == repr(want.simplify())


# -- IrrepsArray ---------------------------------------------------------------------------------

IRREPS = Irreps("2x1o + 0e + 0x2e + 3x1e + 2o + 1o")


def _data(irreps=IRREPS, lead=(4,), seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal(lead + (irreps.dim,)), dtype)


def test_irreps_array_basics():
    x = IrrepsArray(IRREPS, _data())
    assert x.irreps == IRREPS and x.shape == (4, IRREPS.dim) and x.dtype == jnp.float32
    assert x.ndim == 2 and len(x) == 4
    chunks = x.chunks
    assert [c.shape for c in chunks] == [
        (4, 2, 3),
        (4, 1, 1),
        (4, 0, 5),
        (4, 3, 3),
        (4, 1, 5),
        (4, 1, 3),
    ]
    np.testing.assert_array_equal(chunks[3].reshape(4, -1), x.array[:, 7:16])
    assert len(x.list) == len(chunks)
    np.testing.assert_array_equal(from_chunks(IRREPS, chunks, (4,)).array, x.array)
    back = from_chunks("0e + 1o", [None, jnp.ones((4, 1, 3))], (4,))
    np.testing.assert_array_equal(back.array[:, 0], 0.0)
    z = zeros("3x1o", (2, 5), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    assert z.shape == (2, 5, 9) and not np.any(np.asarray(z.array))
    assert IrrepsArray.zeros("0e", 3).shape == (3, 1)
    assert x[1].shape == (IRREPS.dim,) and x[1:3].shape == (2, IRREPS.dim)
    with pytest.raises(IndexError, match="`index`"):
        x[:, 0]
    assert "IrrepsArray(2x1o+" in repr(x[0])


def test_irreps_array_rearrangements_move_the_data():
    x = IrrepsArray(IRREPS, _data())
    f = x.filter(keep="1o + 2o")
    assert f.irreps == "2x1o + 2o + 1o"
    np.testing.assert_array_equal(f.array, np.concatenate([x.array[:, 0:6], x.array[:, 16:24]], 1))
    assert x.filter(drop="1o + 1e + 2o + 2e").irreps == "0e"
    assert x.filter(lmax=0).array.shape == (4, 1)
    r = x.regroup()
    assert r.irreps == IRREPS.regroup() == "0e + 3x1o + 3x1e + 2o"
    want = np.concatenate(
        [x.array[:, 6:7], x.array[:, 0:6], x.array[:, 21:24], x.array[:, 7:21]], 1
    )
    np.testing.assert_array_equal(r.array, want)
    assert x.sort().irreps == IRREPS.sort().irreps
    s = x.slice_by_mul[1:5]
    assert s.irreps == "1o + 0e + 2x1e"
    np.testing.assert_array_equal(s.array, x.array[:, 3:13])
    assert x.simplify().irreps == "2x1o + 0e + 3x1e + 2o + 1o"
    np.testing.assert_array_equal(x.simplify().array, x.array)


def test_rearrangements_commute_with_the_representation(x64):
    """D(regrouped irreps) regroup(x) = regroup(D x), same for filter, sort and slices: data and
    metadata moved together (the blocks act on the right components). Exact up to the
    products' round-off: (2l + 1)-term sums with l <= 2."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    m = jnp.asarray(q * np.sign(np.linalg.det(q)) * -1.0)  # a reflection (det -1)
    x = IrrepsArray(IRREPS, _data(lead=(), dtype=np.float64))
    irs = sorted({ir for _, ir in IRREPS})
    blocks = dict(zip(irs, jax.jit(lambda r: [ir.D_from_matrix(r) for ir in irs])(m)))

    def act(a: IrrepsArray) -> IrrepsArray:
        mats = [np.asarray(blocks[ir]) for mul, ir in a.irreps for _ in range(mul)]
        d = np.zeros((a.irreps.dim, a.irreps.dim))
        start = 0
        for b in mats:
            d[start : start + len(b), start : start + len(b)] = b
            start += len(b)
        return IrrepsArray(a.irreps, d @ np.asarray(a.array))

    tol = rounding_tolerance(np.float64, n_ops=5, cond=5)
    for op in (
        lambda a: a.regroup(),
        lambda a: a.sort(),
        lambda a: a.filter(keep="1o + 2o"),
        lambda a: a.slice_by_mul[1:6],
        lambda a: concatenate([a, a.filter(lmax=1)]),
    ):
        lhs, rhs = op(act(x)), act(op(x))
        assert lhs.irreps == rhs.irreps
        np.testing.assert_allclose(lhs.array, rhs.array, atol=tol * float(jnp.abs(x.array).max()))


def test_irreps_array_arithmetic():
    a, b = IrrepsArray(IRREPS, _data(seed=1)), IrrepsArray(IRREPS, _data(seed=2))
    np.testing.assert_array_equal((a + b).array, a.array + b.array)
    np.testing.assert_array_equal((a - b).array, a.array - b.array)
    np.testing.assert_array_equal((-a).array, -a.array)
    np.testing.assert_array_equal((2.0 * a).array, 2.0 * a.array)
    np.testing.assert_array_equal((a / 4.0).array, a.array / 4.0)
    w = jnp.arange(1.0, 5.0)[:, None]  # one factor per row, shape (..., 1)
    np.testing.assert_array_equal((a * w).array, a.array * w)
    s = IrrepsArray("0e", jnp.arange(1.0, 5.0)[:, None])
    np.testing.assert_array_equal((a * s).array, a.array * s.array)
    np.testing.assert_array_equal((a / s).array, a.array / s.array)
    n = IRREPS.num_irreps
    per_copy = IrrepsArray(f"{n}x0e", _data(Irreps(f"{n}x0e"), seed=3))
    got = (a * per_copy).array
    # one factor per copy: the components of copy i all scaled by per_copy[..., i]
    reps = np.repeat(np.arange(n), [ir.dim for mul, ir in IRREPS for _ in range(mul)])
    np.testing.assert_array_equal(got, a.array * per_copy.array[:, reps])
    with pytest.raises(ValueError, match="same irreps"):
        a + IrrepsArray(IRREPS.regroup(), _data(IRREPS.regroup()))
    with pytest.raises(TypeError):
        a + a.array
    with pytest.raises(ValueError, match="0e"):
        a * IrrepsArray("1o", jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 1\)"):
        a * jnp.ones((4, IRREPS.dim))
    with pytest.raises(TypeError):
        a * (1 + 2j)
    with pytest.raises(ValueError, match="1x0e or 8x0e"):
        a * IrrepsArray("2x0e", jnp.ones((4, 2)))  # neither 1x0e nor one scalar per copy


@pytest.mark.parametrize(
    "call,exc,name",
    [
        (lambda: IrrepsArray("1o", jnp.ones(4)), ValueError, "array"),
        (lambda: IrrepsArray("1o", jnp.ones(())), ValueError, "array"),
        (lambda: IrrepsArray("1o", jnp.ones(3, jnp.int32)), TypeError, "array"),
        (lambda: IrrepsArray("1o", jnp.ones(3, bool)), TypeError, "array"),
        (lambda: IrrepsArray("1o", jnp.ones(3, jnp.complex64)), TypeError, "array"),
        (lambda: IrrepsArray("1q", jnp.ones(3)), ValueError, "irreps"),
        (lambda: zeros("1o", (-1,)), ValueError, "leading_shape"),
        (lambda: zeros("1o", 2, jnp.int32), TypeError, "dtype"),
        (lambda: from_chunks("1o + 0e", [jnp.ones((1, 3))]), ValueError, "chunks"),
        (lambda: from_chunks("1o", [jnp.ones((2, 3))]), ValueError, "chunks"),
        (lambda: from_chunks("1o", [jnp.ones((1, 3), jnp.int32)]), TypeError, "chunks"),
        (lambda: concatenate([]), ValueError, "arrays"),
        (lambda: concatenate([jnp.ones(3)]), TypeError, "arrays"),
        (
            lambda: concatenate(
                [IrrepsArray("0e", jnp.ones((2, 1))), IrrepsArray("0e", jnp.ones((3, 1)))]
            ),
            ValueError,
            "arrays",
        ),
        (
            lambda: concatenate(
                [IrrepsArray("0e", jnp.ones((2, 1))), IrrepsArray("1o", jnp.ones((2, 3)))], axis=0
            ),
            ValueError,
            "arrays",
        ),
        (lambda: concatenate([IrrepsArray("0e", jnp.ones((2, 1)))], axis=2), ValueError, "axis"),
    ],
)
def test_irreps_array_named_errors(call, exc, name):
    with pytest.raises(exc, match=f"`{name}`"):
        call()


# -- pytree: jit, vmap, grad -------------------------------------------------------------------


def test_pytree_round_trips_jit_vmap_grad():
    x = IrrepsArray(IRREPS, _data(lead=(6,)))
    leaves, treedef = jax.tree.flatten(x)
    assert len(leaves) == 1 and jax.tree.unflatten(treedef, leaves).irreps == IRREPS
    doubled = jax.tree.map(lambda a: 2 * a, x)
    assert isinstance(doubled, IrrepsArray) and doubled.irreps == IRREPS

    traces = []

    @jax.jit
    def f(a: IrrepsArray) -> IrrepsArray:
        traces.append(a.irreps)
        return (a.regroup() * 3.0).filter(drop="2o")

    out = f(x)
    f(IrrepsArray(IRREPS, _data(lead=(6,), seed=5)))  # same irreps and shape: no retrace
    assert len(traces) == 1 and out.irreps == "0e + 3x1o + 3x1e"
    f(IrrepsArray(IRREPS.regroup(), _data(IRREPS.regroup(), lead=(6,))))  # new irreps: retrace
    assert len(traces) == 2

    vm = jax.vmap(lambda a: a.filter(keep="1o") * 2.0)(x)
    assert vm.irreps == "2x1o + 1o" and vm.shape == (6, 9)
    np.testing.assert_array_equal(vm.array, x.filter(keep="1o").array * 2.0)
    vm_axis1 = jax.vmap(lambda a: a.regroup(), in_axes=0, out_axes=0)(x)
    np.testing.assert_array_equal(vm_axis1.array, x.regroup().array)

    def loss(a: IrrepsArray) -> jax.Array:
        return jnp.sum(a.filter(keep="1e").array ** 2)

    g = jax.grad(loss)(x)
    assert isinstance(g, IrrepsArray) and g.irreps == IRREPS
    want = np.zeros(x.shape, np.float32)
    want[:, 7:16] = 2 * np.asarray(x.array)[:, 7:16]
    np.testing.assert_array_equal(g.array, want)

    # an IrrepsArray through jit + vmap + grad of a spherical-harmonics model
    vecs = jnp.asarray(np.random.default_rng(8).standard_normal((6, 3)), jnp.float32)

    def energy(v):
        y = spherical_harmonics("0e + 1o + 2e", v, normalize=True)
        return jnp.sum(y.filter(keep="2e").array * y.filter(keep="2e").array)

    grads = jax.jit(jax.vmap(jax.grad(energy)))(vecs)
    # |Y_2|^2 = 5 on the sphere: the gradient of a constant vanishes (to round-off of 5-term
    # sums of degree-2 components of size <= sqrt(5))
    assert np.max(np.abs(np.asarray(grads))) <= rounding_tolerance(np.float32, n_ops=5, cond=10)
    shapes = jax.eval_shape(lambda a: a.regroup(), x)
    assert isinstance(shapes, IrrepsArray) and shapes.shape == (6, IRREPS.dim)
