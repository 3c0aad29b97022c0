"""Re-export of the von Mises-Fisher sampler, which lives in ``geomjax.distributions``.

Kept so that ``geomjax.ot`` and existing imports of ``geomjax.ot._vmf_sampling`` keep working
(one copy of the code).
"""

from geomjax.distributions._vmf_sampling import (
    check_direction,
    check_kappa,
    rotate_rows,
    sample_von_mises_fisher,
    unit_direction,
)

__all__ = [
    "sample_von_mises_fisher",
    "check_kappa",
    "check_direction",
    "rotate_rows",
    "unit_direction",
]
