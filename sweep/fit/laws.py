"""Pure functional forms of the scaling laws, in the parameterisations the fitters use.

Every function takes numpy arrays (or floats) and broadcasts; nothing here fits anything.
"""

from __future__ import annotations

import numpy as np

AT_BOUND = 1e-6
"""A fitted value this close to 0 sits on the bound of a parameter that must be positive (E, A, B, exponents): the
log-sum-exp form's E = exp(e) reaches about 1e-19 there, which is the bound, not an estimate."""


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss of residuals r: r^2/2 inside |r| <= delta, delta (|r| - delta/2) outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_grad(r: np.ndarray, delta: float) -> np.ndarray:
    """Derivative of `huber` with respect to r (the residual clipped to [-delta, delta])."""
    return np.clip(r, -delta, delta)


def chinchilla_loss(n: np.ndarray, d: np.ndarray, e: float, a: float, b: float,
                    alpha: float, beta: float) -> np.ndarray:
    """Hoffmann et al. 2022: L(N, D) = E + A / N^alpha + B / D^beta."""
    return e + a / np.power(n, alpha) + b / np.power(d, beta)


def chinchilla_log_loss_lse(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """log L in log-sum-exp form, theta = (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta).

    theta may be (..., 5); log_n, log_d are (P,); the result is (..., P).
    """
    theta = np.asarray(theta, dtype=float)
    a, b, e, alpha, beta = (theta[..., i, None] for i in range(5))
    terms = np.stack(np.broadcast_arrays(a - alpha * log_n, b - beta * log_d, e + 0 * log_n))
    return np.logaddexp.reduce(terms, axis=0)


def lse_to_natural(theta: np.ndarray) -> dict:
    """(a, b, e, alpha, beta) -> {E, A, B, alpha, beta} (arrays broadcast over leading axes)."""
    theta = np.asarray(theta, dtype=float)
    with np.errstate(over="ignore"):  # a bootstrap draw that runs off to a bound gives inf, reported as such
        return {"E": np.exp(theta[..., 2]), "A": np.exp(theta[..., 0]), "B": np.exp(theta[..., 1]),
                "alpha": theta[..., 3], "beta": theta[..., 4]}


def kaplan_joint_loss(n: np.ndarray, d: np.ndarray, n_c: float, d_c: float, alpha_n: float,
                      alpha_d: float, e: float = 0.0) -> np.ndarray:
    """Kaplan et al. 2020 eq. 1.5: L(N, D) = E + [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D."""
    return e + np.power(np.power(n_c / n, alpha_n / alpha_d) + d_c / d, alpha_d)


def power_law(x: np.ndarray, x_c: float, alpha: float, e: float = 0.0) -> np.ndarray:
    """Kaplan single-variable law: L(x) = E + (x_c / x)^alpha."""
    return e + np.power(x_c / x, alpha)


def chinchilla_optimum(flops: np.ndarray, e, a, b, alpha, beta, flops_per_nd: float = 6.0):
    """Compute-optimal (N*, D*, L*) of L = E + A/N^alpha + B/D^beta under C = k N D.

    Minimising over N at fixed C gives N* = G (C/k)^(beta/(alpha+beta)), D* = (C/k)/N*,
    G = (alpha A / (beta B))^(1/(alpha+beta)). Parameters broadcast against flops.
    """
    # A fit without a finite optimum (beta = 0, a bootstrap draw at a bound) gives nan or inf, which callers
    # report as n/a: numpy's warnings about it are expected, not news for the console.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = alpha + beta
        g = np.power(alpha * a / (beta * b), 1.0 / s)
        x = flops / flops_per_nd
        n = g * np.power(x, beta / s)
        d = x / n
        return n, d, chinchilla_loss(n, d, e, a, b, alpha, beta)


def kaplan_optimum(flops: np.ndarray, n_c, d_c, alpha_n, alpha_d, e=0.0, flops_per_nd: float = 6.0):
    """Compute-optimal (N*, D*, L*) of the Kaplan joint law under C = k N D.

    With p = alpha_N/alpha_D, minimising (N_c/N)^p + k D_c N / C over N gives
    N*^(p+1) = p N_c^p C / (k D_c), so N* grows as C^(1/(1+p)) = C^(alpha_D/(alpha_N+alpha_D)).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # nan/inf are reported as n/a, as above
        p = alpha_n / alpha_d
        log_n = (np.log(p) + p * np.log(n_c) + np.log(flops) - np.log(flops_per_nd) - np.log(d_c)) / (p + 1)
        n = np.exp(log_n)
        d = flops / (flops_per_nd * n)
        return n, d, kaplan_joint_loss(n, d, n_c, d_c, alpha_n, alpha_d, e)
