"""Worker process of the multi-process tests (launched by ``_launch.py``, never by pytest).

    python tests/multiprocess/_worker.py --out results.npz [--cases a,b] [--dtypes float32,float64]
    python tests/multiprocess/_worker.py --loop      # collectives until killed (kill test)

Starts ``jax.distributed`` from the environment (``geomjax.distributed.initialize_from_env``; a
no-op for one process), builds ``global_mesh("data")`` over all processes' devices, runs the
cases of ``_cases.py`` in the same order in every process, checks with
``multihost_utils.assert_equal`` that every replicated output (the final parameters among them)
is the same in every process, and process 0 writes the gathered global outputs to ``--out``
(``<case>/<dtype>/<name>`` keys) with the wall time of each case in ``--out``'s ``.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))  # the repository root: geomjax without installing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--cases", default="all")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--loop", action="store_true")
    ap.add_argument("--tamper", action="store_true", help="perturb process 1's replicas")
    ap.add_argument("--init-timeout", type=int, default=60)
    ap.add_argument("--heartbeat-timeout", type=int, default=10)
    args = ap.parse_args(argv)

    from geomjax.distributed import gather, global_mesh, initialize_from_env

    initialize_from_env(
        initialization_timeout=args.init_timeout,
        heartbeat_timeout_seconds=args.heartbeat_timeout,
    )
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    pid = jax.process_index()
    mesh = global_mesh("data")
    print(
        f"process {pid}/{jax.process_count()}: {jax.local_device_count()} local of "
        f"{jax.device_count()} devices",
        flush=True,
    )

    if args.loop:
        from jax.sharding import PartitionSpec as P

        step = jax.jit(
            jax.shard_map(
                lambda x: jax.lax.psum(x, "data"), mesh=mesh, in_specs=P("data"), out_specs=P()
            )
        )
        x = jax.device_put(np.ones(jax.device_count()), jax.sharding.NamedSharding(mesh, P("data")))
        jax.block_until_ready(step(x))
        print("ready", flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            jax.block_until_ready(step(x))
            time.sleep(0.01)
        return 0

    from _cases import CASES

    names = list(CASES) if args.cases == "all" else args.cases.split(",")
    results, timings, replicas = {}, {}, []
    for name in names:
        for dtype_name in args.dtypes.split(","):
            dtype = np.dtype(dtype_name)
            x64 = jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext()
            with x64:
                t0 = time.perf_counter()
                out = CASES[name](mesh, dtype.type)
                for path, value in jax.tree_util.tree_flatten_with_path(out)[0]:
                    tag = f"{name}/{dtype_name}/{jax.tree_util.keystr(path)}"
                    if value.sharding.is_fully_replicated:
                        # this process's own replica (compared across processes below)
                        results[tag] = np.asarray(value.addressable_data(0))
                        replicas.append((tag, results[tag]))
                    else:
                        results[tag] = gather(value)
                timings[f"{name}/{dtype_name}"] = time.perf_counter() - t0
            print(f"{name}/{dtype_name}: {timings[f'{name}/{dtype_name}']:.1f} s", flush=True)
    # Every replicated output, the final parameters among them, must be bitwise the same in
    # every process: one assert_equal over all their bytes (one collective, one compilation).
    blob = np.concatenate(
        [np.frombuffer(np.ascontiguousarray(v).tobytes(), np.uint8) for _, v in replicas]
    )
    if args.tamper and pid == 1:  # the check must catch a single differing byte
        blob = blob.copy()
        blob[-1] ^= 1
    multihost_utils.assert_equal(
        blob, f"replicated outputs differ across processes: {[t for t, _ in replicas]}"
    )
    if pid == 0 and args.out:
        np.savez(args.out, **results)
        Path(args.out).with_suffix(".json").write_text(json.dumps(timings, indent=1))
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
