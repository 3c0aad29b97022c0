"""Jaxpr audit shared by the precision tests: the ``precision`` of every matrix product."""

from __future__ import annotations

import jax


def dot_precisions(jaxpr, out=None) -> list:
    """The ``precision`` of every ``dot_general`` in a jaxpr, sub-jaxprs included (``jit``,
    ``custom_jvp``/``custom_vjp`` calls, loop and branch bodies)."""
    out = [] if out is None else out
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    dot_precisions(inner, out)
    return out


def is_highest(precision) -> bool:
    """``Precision.HIGHEST`` for both operands."""
    parts = precision if isinstance(precision, (tuple, list)) else (precision,)
    return all(p == jax.lax.Precision.HIGHEST for p in parts)
