"""Random SPD test matrices shared by the SPD tests. (Importable as ``_spd`` because pytest puts
``tests/`` on ``sys.path`` to load ``tests/conftest.py``.)"""

from __future__ import annotations

import numpy as np


def random_spd(rng, n, spread=1.0, spectrum=None):
    """``Q diag(lam) Q^T`` with ``Q`` Haar-orthogonal and ``lam = exp(spread * N(0, 1))``, or the
    given ``spectrum``."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.exp(spread * rng.normal(size=n)) if spectrum is None else np.asarray(spectrum, float)
    return (q * lam) @ q.T
