"""Benchmark (accelerator machine, or CPU): the generative retriever's constrained beam search
for one query, milliseconds per query, on the card and on the host's CPU in the same run.

The model has the shape ``GenerativeConfig`` defaults give (d_model 128, 2 + 2 layers); the
trie holds the semantic IDs of a 20,000-item catalogue (3 levels × 256 codes plus a
de-duplication code). Weights and IDs are random: decode time depends on the shapes, the beam
width and the trie's fan-out, not on what the model learnt. Each query is one beam search of
``--beam`` beams as ``/search`` runs it (the encoder, then four calls of the
:class:`~searchrank.core.generative.IncrementalDecoder`, each followed by the trie's masking on
the host).

The question it answers: does a card cut the decoder's latency enough to serve it in /search,
where the CPU figure (``bench_serve``'s decode stage) is too slow? The last line is the JSON.

    python tests/benchmarks/bench_decode_gpu.py [--queries 200] [--beam 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

ITEMS, LEVELS, CODES, QUERY_TOKENS, WARM_UP = 20_000, 3, 256, 24, 10


def random_trie(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """A trie of ITEMS distinct random codes (their de-duplication codes all 0)."""
    from searchrank.core.constrained_decoding import CodeTrie

    flat = rng.choice(CODES**LEVELS, ITEMS, replace=False)
    levels = [flat // CODES ** (LEVELS - 1 - level) % CODES for level in range(LEVELS)]
    codes = np.column_stack([*levels, np.zeros(ITEMS, dtype=np.int64)])
    return CodeTrie.from_codes(codes, np.arange(ITEMS))


def decode_ms(device: str, queries: int, beam: int) -> list[float]:
    """Milliseconds of each of ``queries`` beam searches on ``device``, after WARM_UP more."""
    import torch

    from searchrank.core.constrained_decoding import beam_search_batch
    from searchrank.core.generative import GenerativeConfig, GenerativeRetriever, IncrementalDecoder

    rng = np.random.default_rng(0)
    trie = random_trie(rng)
    config = GenerativeConfig(depth=trie.depth, codes=max(trie.vocabulary), users=1000)
    torch.manual_seed(0)
    model = GenerativeRetriever(config).to(device).eval()
    tokens = torch.as_tensor(rng.integers(1, config.text_buckets, (1, QUERY_TOKENS)), device=device)
    user = torch.ones(1, dtype=torch.int64, device=device)
    times = []
    for _ in range(WARM_UP + queries):
        started = time.perf_counter()
        with torch.inference_mode():
            step = IncrementalDecoder(model, *model.encode(tokens, user))
            beam_search_batch(step, trie, 1, beam)
        times.append((time.perf_counter() - started) * 1000)
    return times[WARM_UP:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--beam", type=int, default=20)
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.is_available()
    cpu = decode_ms("cpu", min(args.queries, 50), args.beam)
    card = decode_ms("cuda", args.queries, args.beam) if gpu else None
    summary = {
        "bench": "decode_gpu",
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "beam": args.beam,
        "items": ITEMS,
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
    }
    if card is not None:
        summary |= {
            "gpu_p50_ms": round(statistics.median(card), 3),
            "gpu_p99_ms": round(float(np.percentile(card, 99)), 3),
            "speedup_p50": round(statistics.median(cpu) / statistics.median(card), 2),
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
