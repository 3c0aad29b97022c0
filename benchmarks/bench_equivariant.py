"""EGNN layer: geomjax.equivariant egnn_layer against the official PyTorch E_GCL architecture.

Cases (float32, 64 features, SiLU, mean coordinate aggregation, residual node update):
  * a large sparse graph: 1000 nodes, 20,000 random edges, no edge attributes (E_GCL);
  * a batch of N-body systems: 100 graphs x 5 nodes, fully connected (2,000 edges), 2 edge
    attributes, velocity layer (E_GCL_vel, as in the paper's N-body experiment);
each timed forward, and forward + backward (gradient of the sum of squared outputs w.r.t. all
parameters). geomjax runs jax.jit(egnn_layer) / jax.jit(jax.grad(...)) on the padded-graph
convention (senders -> receivers, segment sums at the receivers).

Baseline (benchmark-only, written here from the paper's equations with the official code's
architecture; skipped with the reason if torch does not import): torch.nn Linear/SiLU MLPs,
edge MLP on torch.cat([h_i, h_j, ||x_i - x_j||^2, a_ij]), coordinate MLP with a bias-free last
layer, unsorted_segment_sum / mean by index_add_. The geomjax weights are copied into it and both
are checked to agree on the same inputs before timing. On the GPU torch runs on CUDA with
TF32 off and jax with matmul precision HIGHEST.

Run: python benchmarks/bench_equivariant.py [--device gpu] [--out PATH] [--repeats R] [--quick]
On a shared CPU pin it to one core, both sides single-threaded:
  OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_equivariant.py --device cpu
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomjax.equivariant._egnn import egnn_layer, init_egnn_layer  # noqa: E402
from geomjax.equivariant._graph import batch_graphs, fully_connected_graph  # noqa: E402


def try_import_torch():
    try:
        import torch

        return torch, ""
    except Exception as exc:  # noqa: BLE001 - report any import failure and skip
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def make_torch_layer(torch, params, device):
    """The E_GCL / E_GCL_vel forward in torch, holding a copy of the geomjax ``params``."""
    nn = torch.nn

    def linear(w, b=None):
        lin = nn.Linear(w.shape[0], w.shape[1], bias=b is not None)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(np.array(w).T))
            if b is not None:
                lin.bias.copy_(torch.as_tensor(np.array(b)))
        return lin

    def mlp(p, final_act):
        layers = [linear(p["w0"], p.get("b0")), nn.SiLU(), linear(p["w1"], p.get("b1"))]
        return nn.Sequential(*(layers + [nn.SiLU()] if final_act else layers))

    def segment_sum(data, ids, n):
        return data.new_zeros((n, data.shape[1])).index_add_(0, ids, data)

    class EGCL(nn.Module):
        def __init__(self):
            super().__init__()
            self.edge_mlp = mlp(params["edge_mlp"], final_act=True)
            self.node_mlp = mlp(params["node_mlp"], final_act=False)
            self.coord_mlp = mlp(params["coord_mlp"], final_act=False)
            self.vel_mlp = mlp(params["vel_mlp"], final_act=False) if "vel_mlp" in params else None

        def forward(self, h, x, row, col, edge_attr=None, vel=None):
            # row = receivers (i), col = senders (j), as edge_index in the official code.
            n = h.shape[0]
            diff = x[row] - x[col]
            radial = (diff**2).sum(1, keepdim=True)
            parts = [h[row], h[col], radial] + ([edge_attr] if edge_attr is not None else [])
            m = self.edge_mlp(torch.cat(parts, dim=1))
            trans = diff * self.coord_mlp(m)
            count = segment_sum(torch.ones_like(radial), row, n).clamp(min=1)
            x = x + segment_sum(trans, row, n) / count
            if self.vel_mlp is not None:
                x = x + self.vel_mlp(h) * vel
            agg = segment_sum(m, row, n)
            h = h + self.node_mlp(torch.cat([h, agg], dim=1))
            return h, x

    return EGCL().to(device)


def random_graph(key, n_nodes, n_edges):
    ks, kr = jax.random.split(key)
    s = jax.random.randint(ks, (n_edges,), 0, n_nodes, dtype=jnp.int32)
    r = jax.random.randint(kr, (n_edges,), 0, n_nodes, dtype=jnp.int32)
    r = jnp.where(r == s, (r + 1) % n_nodes, r)  # no self loops
    return s, r


def make_cases(quick: bool):
    k = jax.random.split(jax.random.key(0), 8)
    n, e = (100, 2000) if quick else (1000, 20_000)
    s, r = random_graph(k[0], n, e)
    large = {
        "name": f"E_GCL {n} nodes {e} edges F=64",
        "params": init_egnn_layer(k[1], 64, 0, 64, coord_gain=1.0),
        "h": jax.random.normal(k[2], (n, 64)),
        "x": jax.random.normal(k[3], (n, 3)),
        "senders": s,
        "receivers": r,
        "edge_attr": None,
        "v": None,
    }
    b, m = (10, 5) if quick else (100, 5)
    fs, fr = fully_connected_graph(m)
    g = batch_graphs(jnp.stack([fs] * b), jnp.stack([fr] * b), m)
    ne = g.senders.shape[0]
    nbody = {
        "name": f"E_GCL_vel N-body {b} graphs x {m} nodes ({ne} edges) F=64",
        "params": init_egnn_layer(k[4], 64, 2, 64, velocity=True, coord_gain=1.0),
        "h": jax.random.normal(k[5], (b * m, 64)),
        "x": jax.random.normal(k[6], (b * m, 3)),
        "senders": g.senders,
        "receivers": g.receivers,
        "edge_attr": jax.random.normal(k[7], (ne, 2)),
        "v": jax.random.normal(k[0], (b * m, 3)),
    }
    return [large, nbody]


def geomjax_fns(case):
    s, r, a, v = case["senders"], case["receivers"], case["edge_attr"], case["v"]

    def forward(params, h, x):
        return egnn_layer(params, h, x, s, r, edge_attr=a, v=v)

    def loss(params, h, x):
        h2, x2 = forward(params, h, x)
        return jnp.sum(h2**2) + jnp.sum(x2**2)

    return jax.jit(forward), jax.jit(jax.grad(loss))


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main():
    args = _harness.parse_args("equivariant")
    jax.config.update("jax_default_matmul_precision", "highest")
    torch, why_torch = try_import_torch()
    if torch is not None:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        peer = f"torch E_GCL ({dev}, {torch.__version__})"
    else:
        print(f"skipping the torch baseline: {why_torch}")
    rows = []
    for case in make_cases(args.quick):
        fwd, grad = geomjax_fns(case)
        p, h, x = case["params"], case["h"], case["x"]
        t_fwd = _harness.time_fn(lambda: fwd(p, h, x), repeats=args.repeats)
        t_grad = _harness.time_fn(lambda: grad(p, h, x), repeats=args.repeats)
        if torch is None:
            for what, t in (("forward", t_fwd), ("forward+backward", t_grad)):
                print(f"{case['name']} {what}: geomjax {1e3 * t['median_s']:.3f} ms (no baseline)")
            continue
        layer = make_torch_layer(torch, p, dev)
        to_t = lambda a: None if a is None else torch.as_tensor(np.array(a), device=dev)  # noqa: E731
        th, tx, ta, tv = to_t(h), to_t(x), to_t(case["edge_attr"]), to_t(case["v"])
        row = torch.as_tensor(np.asarray(case["receivers"]), dtype=torch.long, device=dev)
        col = torch.as_tensor(np.asarray(case["senders"]), dtype=torch.long, device=dev)

        # Agreement on the same weights and inputs: outputs and the gradient of the edge MLP.
        with torch.no_grad():
            ref_h, ref_x = layer(th, tx, row, col, ta, tv)
        ours_h, ours_x = fwd(p, h, x)
        err_h = rel_diff(ours_h, ref_h.cpu().numpy())
        err_dx = rel_diff(np.asarray(ours_x) - np.asarray(x), (ref_x - tx).cpu().numpy())
        layer.zero_grad()
        out_h, out_x = layer(th, tx, row, col, ta, tv)
        ((out_h**2).sum() + (out_x**2).sum()).backward()
        g_ours = grad(p, h, x)["edge_mlp"]["w1"]
        err_g = rel_diff(g_ours, layer.edge_mlp[2].weight.grad.T.cpu().numpy())
        assert max(err_h, err_g) < 1e-4 and err_dx < 1e-3, (case["name"], err_h, err_dx, err_g)

        def torch_forward():
            with torch.no_grad():
                out = layer(th, tx, row, col, ta, tv)
            sync()
            return out

        def torch_backward():
            layer.zero_grad(set_to_none=True)
            out_h, out_x = layer(th, tx, row, col, ta, tv)
            ((out_h**2).sum() + (out_x**2).sum()).backward()
            sync()
            return out_h

        t_pf = _harness.time_fn(torch_forward, repeats=args.repeats)
        t_pb = _harness.time_fn(torch_backward, repeats=args.repeats)
        checks = {"rel_diff_h": err_h, "rel_diff_dx": err_dx, "rel_diff_grad": err_g}
        for what, ours, theirs in (("forward", t_fwd, t_pf), ("forward+backward", t_grad, t_pb)):
            rows.append(
                {
                    "case": f"{case['name']} {what}",
                    "baseline": peer,
                    "geomjax_s": ours["median_s"],
                    "baseline_s": theirs["median_s"],
                    "ratio": theirs["median_s"] / ours["median_s"],
                    **checks,
                }
            )
    if not rows:
        print("no rows written: the torch baseline is unavailable")
        return
    _harness.print_table(rows)
    threads = {
        k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ
    }
    notes = (
        "EGNN layer (E_GCL; E_GCL_vel for the N-body batch), float32, 64 features, SiLU, mean "
        "coordinate aggregation. geomjax: jax.jit(egnn_layer) and jax.jit(jax.grad(sum of squares "
        "of both outputs)) w.r.t. all parameters; the first linear layer of phi_e is applied per "
        "node before the edge gather, and the coordinate update, messages and degrees share one "
        "segment sum. Baseline: the official E_GCL architecture re-written in torch (torch.cat "
        "edge MLP input, index_add_ segment sums), the same weights, forward under no_grad; "
        "agreement checked first (rel_diff_*). Matmul precision HIGHEST (torch TF32 off). "
        f"Thread settings: {threads or 'default'}."
    )
    out = _harness.write_results("equivariant", args, rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
