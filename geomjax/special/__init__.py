"""Special functions evaluated in log space: log-Bessel functions ``log_iv`` and ``log_kv``."""

from geomjax.special._log_bessel import log_iv, log_kv

__all__ = ["log_iv", "log_kv"]
