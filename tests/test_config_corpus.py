"""The mutated-config corpus (bench/config_corpus.py): every mutation tried as `check`, as
`run --duration` on virtual time and as a reload of a running show, judged against the
outcome its generator declared (refuse / warn / accept): 0 crashes, 0 accepted but wrong,
0 disagreements between `check` and `run`."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.config_corpus import Mutation, all_mutations, sweep, table

MUTATIONS = all_mutations()


def test_the_corpus_is_big_and_classified_before_it_is_tried():
    assert len(MUTATIONS) >= 400
    assert {m.expect for m in MUTATIONS} == {"refuse", "warn", "accept"}
    kinds = Counter(m.kind for m in MUTATIONS)
    for kind in ("bad date", "bad time", "bad day", "collision", "nan/inf", "wrong type",
                 "unknown key", "missing / wrong file", "playlist item", "preset field",
                 "lockstep group", "network address", "model weights", "several outputs"):
        assert kinds[kind] > 0, kind


def _wrong(results) -> list[str]:
    return [f"{r.verdict}: {r.mutation.name} (expect {r.mutation.expect}): check {r.check}, "
            f"run {r.run}, reload {r.reload}; " + " | ".join(r.detail)
            for r in results if r.verdict != "ok"]


def test_a_sample_of_the_corpus():
    """The inner loop's taste of the corpus: the first mutation expected to be refused, the
    first expected to warn and the first expected to play (the whole corpus is slow)."""
    first: dict[str, Mutation] = {}
    for m in MUTATIONS:
        first.setdefault(m.expect, m)
    results = sweep(list(first.values()))
    wrong = _wrong(results)
    assert len(results) == 3 and not wrong, "\n".join(wrong) + "\n" + table(results)


CHUNKS = 8      # the whole corpus in parts, so that pytest-xdist spreads it over the cores


@pytest.mark.slow
@pytest.mark.parametrize("part", range(CHUNKS))
def test_the_whole_corpus(part):
    results = sweep(MUTATIONS[part::CHUNKS])
    wrong = _wrong(results)
    assert not wrong, "\n".join(wrong) + "\n" + table(results)
