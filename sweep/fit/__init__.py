"""Scaling-law fitter: Kaplan and Chinchilla (approaches 1-3) fits with bootstrap intervals.

    from sweep.fit import fit, FitConfig
    result = fit(runs_dataframe, FitConfig(n_bootstrap=200))   # fit.json's content
"""

from sweep.fit.config import FitConfig, FitInputError, MethodSkipped
from sweep.fit.pipeline import fit

__all__ = ["fit", "FitConfig", "FitInputError", "MethodSkipped"]
