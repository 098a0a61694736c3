"""STS token generation throughput: EA11 credit tokens per second on one core, against openpaygo.

Run with ``python bench/bench_sts.py``. Each figure is the median of several timed runs.
"Cached" keeps the meter's decoder key (and its MISTY1 key schedule) between tokens, as a
vending process does for a busy meter; "uncached" derives the key with DKGA04 and
schedules it for every token, as for a stream of different meters.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from openpaygo import generate_token

from citygas.sts import DecoderKey, DecoderKeyParameters, derive_decoder_key_dkga04, issue_credit_token

VENDING_KEY = bytes.fromhex("abababababababab949494949494949401234567")
PARAMS = DecoderKeyParameters(pan="600727000000000009", sgc="123457", ti=1, kt=2, krn=1, base_date=1993)
RUNS = 7
TOKENS_PER_RUN = 5_000


def tokens_per_second(make_tokens: Callable[[int], None], count: int) -> float:
    rates = []
    for _ in range(RUNS):
        started = time.perf_counter()
        make_tokens(count)
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def ea11_cached(count: int) -> None:
    key = derive_decoder_key_dkga04(VENDING_KEY, PARAMS)
    for tid in range(5_000_000, 5_000_000 + count):
        issue_credit_token(decoder_key=key, subclass=2, amount=tid % 16_000, tid=tid, ken=255, rnd=tid & 15)


def ea11_uncached(count: int) -> None:
    for tid in range(5_000_000, 5_000_000 + count):
        # A fresh DecoderKey means a fresh DKGA04 derivation and MISTY1 key schedule.
        key = derive_decoder_key_dkga04(VENDING_KEY, PARAMS)
        issue_credit_token(decoder_key=key, subclass=2, amount=tid % 16_000, tid=tid, ken=255, rnd=tid & 15)


def openpaygo_tokens(count: int) -> None:
    secret = "a29ab82edc5fbbc41ec9530f6dac86b1"
    for index in range(count):
        # Count advances by one per token as a device would; small counts keep the chain short.
        generate_token(secret_key=secret, count=index % 50 + 1, value=index % 100 + 1)


def main() -> None:
    ea11_cached(100)  # build MISTY1 tables and warm caches outside the timing
    cached = tokens_per_second(ea11_cached, TOKENS_PER_RUN)
    uncached = tokens_per_second(ea11_uncached, TOKENS_PER_RUN)
    reference = tokens_per_second(openpaygo_tokens, TOKENS_PER_RUN)
    check = DecoderKey.from_hex("f94b6ed353c3bfdb113e2d3a7ea3c41d")
    assert derive_decoder_key_dkga04(VENDING_KEY, PARAMS) == check
    print(f"EA11 credit tokens/s, decoder key cached:     {cached:>10,.0f}")
    print(f"EA11 credit tokens/s, decoder key not cached: {uncached:>10,.0f}")
    print(f"openpaygo tokens/s:                           {reference:>10,.0f}")
    print(f"ratio EA11 cached / openpaygo:                {cached / reference:>10.2f}")
    print(f"ratio EA11 uncached / openpaygo:              {uncached / reference:>10.2f}")
    print(f"ratio EA11 cached / uncached:                 {cached / uncached:>10.2f}")
    target = 20_000
    print(f"target {target:,} cached tokens/s per core: {'met' if cached >= target else 'NOT met'}")


if __name__ == "__main__":
    main()
