"""Evaluate 2^-|t| and the logistic function on secret fixed-point arrays.

MPyC 0.11 has no exponential, so it is built here from its primitives,
elementwise over a secret-shared array, all elements at once. The input is
t = x / ln 2, so that exp(-|x|) = 2^-|t|; a caller with a linear predictor
x = X b folds the factor into the public b.

1. s = [t < 0], one secure comparison, and a = |t| = (1 - 2s) t.
2. A bit decomposition gives the K integer bits and the top 6 fraction bits
   of a, and r = a minus the value of those bits lies in [0, 2^-6). K
   follows from a public bound on |t|, which the caller derives from public
   values.
3. 2^-(integer part) and 2^-(top fraction bits) are public linear
   combinations of the products of subsets of their bits, and products of
   0/1 numbers need no truncation. Integer bits above the 6 lowest make
   2^-a at most 2^-64, which is taken as 0. 2^-r is a polynomial of degree
   ``POLYNOMIAL_DEGREE``, the Chebyshev interpolant of 2^-r on [0, 2^-6],
   whose error is below ``POLYNOMIAL_ERROR``. 2^-a is the product of the
   three.
4. q = 1 / (1 + 2^-a) by Newton's iteration y <- y (2 - d y) on
   d = 1 + 2^-a in (1, 2], from the linear start 24/17 - 8/17 d, whose
   relative error is at most 1/17. Each iteration squares the relative
   error, so ``RECIPROCAL_ITERATIONS`` = 3 leave (1/17)^8 < 1.5e-10.
5. The logistic function of x is q where t >= 0 and 1 - q where t < 0.

Only the comparison and the bit decomposition open values, each masked by
random numbers that the parties share, so no value of t, s, a or r is
opened. Each secure product of two fractional numbers rounds to about
2^-f, and 12 of them follow one another, so the results are within
:func:`error_bound` of the exact values. ``tests/station/test_secure_sigmoid.py``
checks this with three real parties against NumPy.

Cost per element: one comparison of about f + K bits, a bit decomposition
of f + K bits, and 12 secure products each with its own truncation of f
bits. MPyC draws f random bits per truncation, and these dominate: 200
elements took 11 s with f = 48 and three parties on a 2-core machine at
load average 21 (16 s before the fraction bits replaced a polynomial of
degree 9).
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

# The reciprocal's Newton iterations from the start 24/17 - 8/17 d.
RECIPROCAL_ITERATIONS = 3
# The low integer bits of |t| whose subset products give 2^-(their value)
# without truncation.
MONOMIAL_BITS = 6
# The fraction bits of |t| that subset products cover in the same way; the
# polynomial covers the remainder below 2^-FRACTION_BITS.
FRACTION_BITS = 6
# Degree 3 keeps the interpolant's error near 5e-12, far below the 1e-4
# relative agreement the fits need, at one secure product per degree.
POLYNOMIAL_DEGREE = 3
_REMAINDER = 2.0**-FRACTION_BITS


def _power_coefficients(degree: int) -> np.ndarray:
    """Return the power-basis coefficients of the interpolant of 2^-r on [0, 2^-6]."""
    interpolant = Chebyshev.interpolate(
        lambda r: np.exp2(-r), degree, domain=[0.0, _REMAINDER]
    )
    identity = [-1.0, 1.0]
    return interpolant.convert(kind=Polynomial, domain=identity, window=identity).coef


COEFFICIENTS = _power_coefficients(POLYNOMIAL_DEGREE)
_GRID = np.linspace(0.0, _REMAINDER, 20001)
# The interpolant's largest error on a fine grid, with a factor 2 for the
# points between grid nodes.
POLYNOMIAL_ERROR = 2.0 * float(
    np.max(np.abs(Polynomial(COEFFICIENTS)(_GRID) - np.exp2(-_GRID)))
)


def error_bound(fraction_bits: int) -> float:
    """Return the bound on the absolute error of 2^-|t| and of the logistic function.

    It adds the polynomial's error, the reciprocal's relative error (q is at
    most 1) and 64 roundings of 2^-f, more than the products in a row.
    With f >= 40 it is below 2e-10.
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


def _power_of_half(bits: Any, places: list[float]) -> Any:
    """Return 2^-v for the number v whose secret bits `bits` have values `places`.

    For the first ``MONOMIAL_BITS`` bits, 2^-v is a public linear
    combination of the products of subsets of the bits, and products of 0/1
    numbers need no truncation. Any later bit must have a value of at least
    64: when it is set, 2^-v is at most 2^-64 and is taken as 0.
    """
    low = min(bits.shape[1], MONOMIAL_BITS)
    monomials = bits[:, :1]
    weights = [2.0 ** -places[0] - 1.0]
    for i in range(1, low):
        bit = bits[:, i : i + 1]
        products = monomials * bit
        monomials = mpc.np_hstack((monomials, bit, products))
        monomials.integral = True
        factor = 2.0 ** -places[i] - 1.0
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
    if f < FRACTION_BITS:
        raise ValueError(
            f"SecFxp({secfxp.bit_length}, {f}) has {f} fraction bits, fewer than "
            f"the {FRACTION_BITS} that 2^-|t| decomposes; use more fraction bits"
        )
    if top + 2 > secfxp.bit_length - f:
        raise ValueError(
            f"the bound {bound} needs {top} integer bits, more than the "
            f"{secfxp.bit_length - f - 2} that SecFxp({secfxp.bit_length}, {f}) "
            "leaves; use a type with more integer bits or a smaller bound"
        )

    # |t| < 2^top and t has f fraction bits: the comparison needs top + f + 2.
    negative = mpc.np_sgn(t, l=top + f + 2, LT=True)
    magnitude = t - 2 * negative * t
    bits = mpc.np_to_bits(magnitude, l=f + top)
    upper = bits[:, f - FRACTION_BITS :]
    upper.integral = True
    places = [2.0**i for i in range(-FRACTION_BITS, top)]
    # The bits below 2^-FRACTION_BITS are left: 0 <= r < 2^-FRACTION_BITS.
    r = magnitude - mpc.np_sum(upper * np.array(places), axis=1)
    integer = _power_of_half(upper[:, FRACTION_BITS:], places[FRACTION_BITS:])
    fraction = _power_of_half(upper[:, :FRACTION_BITS], places[:FRACTION_BITS])
    return integer * fraction * _polynomial(r), negative


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
