"""Evaluate 2^-|t| and the logistic function on secret fixed-point arrays.

MPyC 0.11 has no exponential, so it is built here from its primitives,
elementwise over a secret-shared array, all elements at once. The input is
t = x / ln 2, so that exp(-|x|) = 2^-|t|; a caller with a linear predictor
x = X b folds the factor into the public b.

1. s = [t < 0], one secure comparison, and a = |t| = (1 - 2s) t.
2. The integer k = round(a) comes from a secure truncation by f bits (MPyC
   rounds probabilistically, so k is the floor or the ceiling of a), and its
   K bits from a bit decomposition. K follows from a public bound on |t|,
   which the caller derives from public values. r = a - k lies in (-1, 1).
3. 2^-k is a public linear combination of the products of subsets of k's
   low 6 bits, and products of 0/1 numbers need no truncation. Any higher
   bit makes 2^-k at most 2^-64, which is taken as 0. 2^-r is a polynomial
   of degree ``POLYNOMIAL_DEGREE``, the Chebyshev interpolant of 2^-r on
   [-1, 1], whose error is below ``POLYNOMIAL_ERROR``. 2^-a = 2^-k 2^-r.
4. q = 1 / (1 + 2^-a) by Newton's iteration y <- y (2 - d y) on
   d = 1 + 2^-a in (1, 2], from the linear start 24/17 - 8/17 d, whose
   relative error is at most 1/17. Each iteration squares the relative
   error, so ``RECIPROCAL_ITERATIONS`` = 3 leave (1/17)^8 < 1.5e-10.
5. The logistic function of x is q where t >= 0 and 1 - q where t < 0.

Only the comparison, the truncation and the bit decomposition open
values, each masked by random numbers that the parties share, so no value
of t, s, k or r is opened. Each secure product of two fractional numbers
rounds to about 2^-f, and about 20 of them follow one another, so the
results are within :func:`error_bound` of the exact values.
``tests/station/test_secure_sigmoid.py`` checks this with three real
parties against NumPy.

Cost per element: one comparison of about f + K bits, one truncation, a
K-bit decomposition, and about 15 secure products each with its own
truncation of f bits. MPyC draws f random bits per truncation, and these
dominate: 200 elements took 9 s with f = 48 and three parties on a 2-core
machine at load average 4.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from mpyc.runtime import mpc
from numpy.polynomial import Chebyshev, Polynomial

__all__ = [
    "POLYNOMIAL_DEGREE",
    "POLYNOMIAL_ERROR",
    "error_bound",
    "exp2_negative_abs",
    "integer_bits",
    "sigmoid2",
]

# Degree 9 keeps the interpolant's error near 3e-11, far below the 1e-4
# relative agreement the fits need, at one secure product per degree.
POLYNOMIAL_DEGREE = 9
# The reciprocal's Newton iterations from the start 24/17 - 8/17 d.
RECIPROCAL_ITERATIONS = 3
# The low bits of k whose subset products give 2^-k without truncation.
MONOMIAL_BITS = 6


def _power_coefficients(degree: int) -> np.ndarray:
    """Return the power-basis coefficients of the interpolant of 2^-r on [-1, 1]."""
    interpolant = Chebyshev.interpolate(lambda r: np.exp2(-r), degree)
    return interpolant.convert(kind=Polynomial).coef


COEFFICIENTS = _power_coefficients(POLYNOMIAL_DEGREE)
_GRID = np.linspace(-1.0, 1.0, 20001)
# The interpolant's largest error on a fine grid of [-1, 1], with a factor 2
# for the points between grid nodes.
POLYNOMIAL_ERROR = 2.0 * float(
    np.max(np.abs(Polynomial(COEFFICIENTS)(_GRID) - np.exp2(-_GRID)))
)


def error_bound(fraction_bits: int) -> float:
    """Return the bound on the absolute error of 2^-|t| and of the logistic function.

    It adds the polynomial's error, the reciprocal's relative error (q is at
    most 1) and 64 roundings of 2^-f, more than the products in a row.
    """
    reciprocal_error = (1 / 17) ** (2**RECIPROCAL_ITERATIONS)
    return POLYNOMIAL_ERROR + reciprocal_error + 64 * 2.0**-fraction_bits


def integer_bits(bound: float) -> int:
    """Return the bits K of the integer part: 2^K > ceil(`bound`) + 2.

    So K bits hold the floor or the ceiling of any |t| <= `bound`, with a
    margin for the rounding of t itself.
    """
    if not math.isfinite(bound) or bound < 0:
        raise ValueError(
            f"the bound {bound} on |t| must be a finite number >= 0; pass a "
            "bound that public values imply, such as the sum of the absolute "
            "coefficients"
        )
    return (math.ceil(bound) + 2).bit_length()


def _polynomial(r: Any) -> Any:
    """Evaluate the interpolant of 2^-r at the secret array `r` by Horner's rule."""
    value = r * float(COEFFICIENTS[-1]) + float(COEFFICIENTS[-2])
    for coefficient in COEFFICIENTS[-3::-1]:
        value = value * r + float(coefficient)
    return value


def _power_of_half(bits: Any) -> Any:
    """Return 2^-k from the secret bits of k, least significant first.

    For the low ``MONOMIAL_BITS`` bits, 2^-k is a public linear combination
    of the products of subsets of the bits, and products of 0/1 numbers need
    no truncation. Any higher bit set makes 2^-k at most 2^-64, taken as 0.
    """
    low = min(bits.shape[1], MONOMIAL_BITS)
    monomials = bits[:, :1]
    weights = [2.0**-1 - 1.0]
    for i in range(1, low):
        bit = bits[:, i : i + 1]
        products = monomials * bit
        monomials = mpc.np_hstack((monomials, bit, products))
        monomials.integral = True
        factor = 2.0 ** -(2.0**i) - 1.0
        weights += [factor] + [weight * factor for weight in weights]
    power = mpc.np_sum(monomials * np.array(weights), axis=1) + 1
    for i in range(low, bits.shape[1]):
        power = power * (1 - bits[:, i])
    return power


def exp2_negative_abs(t: Any, bound: float) -> tuple[Any, Any]:
    """Return 2^-|t| and the bits [t < 0] for a secret fixed-point array `t`.

    `bound` is a public bound on |t|. A larger |t| gives a wrong result, so
    the caller must derive the bound from public values.
    """
    secfxp = type(t).sectype
    f = secfxp.frac_length
    top = integer_bits(bound)
    if top + 2 > secfxp.bit_length - f:
        raise ValueError(
            f"the bound {bound} needs {top} integer bits, more than the "
            f"{secfxp.bit_length - f - 2} that SecFxp({secfxp.bit_length}, {f}) "
            "leaves; use a type with more integer bits or a smaller bound"
        )

    # |t| < 2^top and t has f fraction bits: the comparison needs top + f + 2.
    negative = mpc.np_sgn(t, l=top + f + 2, LT=True)
    magnitude = t - 2 * negative * t
    # np_trunc divides |t|'s representation |t| 2^f by 2^f with probabilistic
    # rounding, and the product with 2^f turns that integer into the number
    # k. So k is the floor or the ceiling of |t|, and r = |t| - k is in (-1, 1).
    k = mpc.np_trunc(magnitude, f=f) * (1 << f)
    k.integral = True
    r = magnitude - k
    bits = mpc.np_to_bits(k, l=f + top)[:, f:]
    return _power_of_half(bits) * _polynomial(r), negative


def sigmoid2(t: Any, bound: float) -> Any:
    """Return 1 / (1 + 2^-t), the logistic function of t ln 2, of a secret array.

    `bound` is a public bound on |t|, as for :func:`exp2_negative_abs`. A
    caller with a linear predictor x b passes t = x (b / ln 2).
    """
    e, negative = exp2_negative_abs(t, bound)
    d = e + 1
    y = d * (-8 / 17) + 24 / 17
    for _ in range(RECIPROCAL_ITERATIONS):
        y = y * (2 - d * y)
    # q for t >= 0, and 1 - q for t < 0.
    return negative + y - 2 * negative * y
