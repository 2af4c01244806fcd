"""Scaling-law fitter: Kaplan and Chinchilla (approaches 1-3) fits with bootstrap intervals.

    from sweep.fit import fit, FitConfig
    result = fit(runs_dataframe, FitConfig(n_bootstrap=200))   # fit.json's content
"""

import sys
import types

from sweep.fit.config import FitConfig, FitInputError, MethodSkipped
from sweep.fit.pipeline import fit

__all__ = ["fit", "FitConfig", "FitInputError", "MethodSkipped"]


class _CallablePackage(types.ModuleType):
    """`from sweep import fit` is the API the README shows, but once this subpackage is imported Python binds
    `sweep.fit` to the package, not to the function; so calling the package calls the function."""

    def __call__(self, *args, **kwargs):
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
