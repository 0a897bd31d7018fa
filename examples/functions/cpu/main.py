"""The "cpu" example Sluice function: CPU-bound work, input ``{"n": N}`` -> ``{"primes": k}``.

Counts the primes below ``N`` (0 <= N <= 100,000,000) with a pure-Python sieve of Eratosthenes, so
the time grows with N (measured on one core: about 10 ms for N = 1,000,000 and 1.5 s for
N = 100,000,000, with about 170 MB resident at that size). Bad input is a handler error (500).
"""

from sluice_function import serve

MAX_N = 100_000_000


def count_primes(n):
    """Number of primes strictly below ``n``."""
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    i = 2
    while i * i < n:
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
        i += 1
    return sum(sieve)


def handler(event):
    n = event.get("n") if isinstance(event, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_N:
        raise ValueError('input must be {"n": <integer in 0..=%d>}' % MAX_N)
    return {"primes": count_primes(n)}


if __name__ == "__main__":
    serve(handler)
