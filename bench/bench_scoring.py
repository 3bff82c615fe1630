"""Time scoring of 100,000 random submissions of a 50-question test, per scheme.

Run by hand: `.venv/bin/python bench/bench_scoring.py [N_SUBMISSIONS]`. Prints, per scheme, the
time for `score` alone, for `validate_answers` on JSON-shaped input (str keys, int or list
values, as the API receives it), for `score(normalize_answers(...))` on stored answers (the
plain path) and for `Scorer(key).score_json` (what a bulk regrade runs, from the JSON text, with
a fresh scorer: the same results, memoised per question). Generating the input is not timed;
results are dropped as they come and the cyclic GC is off, as in the regrade worker.
The machine's load shows in the figures: run it twice.
The bulk-regrade budget is well under 20 s end to end.
"""

from __future__ import annotations

import gc
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable

import orjson

from common.grading import (
    AnswerKey,
    QuestionKey,
    Scheme,
    Scorer,
    normalize_answers,
    score,
    validate_answers,
)

N_QUESTIONS = 50
N_OPTIONS = 5


def make_key(scheme: Scheme, rng: random.Random) -> AnswerKey:
    questions = []
    for qid in range(1, N_QUESTIONS + 1):
        options = frozenset(range(qid * 100, qid * 100 + N_OPTIONS))
        multiple = qid % 2 == 0  # half single-, half multiple-answer
        k = rng.randint(1, 3) if multiple else 1
        correct = frozenset(rng.sample(sorted(options), k))
        questions.append(QuestionKey(qid, float(rng.randint(1, 4)), multiple, options, correct))
    return AnswerKey(tuple(questions), scheme=scheme, negative_fraction=0.25)


def make_raw(key: AnswerKey, n: int, rng: random.Random) -> list[dict[str, object]]:
    """JSON-shaped submissions; about 10 % of questions left unanswered."""
    out: list[dict[str, object]] = []
    for _ in range(n):
        sub: dict[str, object] = {}
        for q in key.questions:
            if rng.random() < 0.1:
                continue
            opts = sorted(q.options)
            sub[str(q.id)] = rng.sample(opts, rng.randint(1, 3)) if q.multiple else rng.choice(opts)
        out.append(sub)
    return out


def timed(label: str, n: int, fn: Callable[[], Iterable[object]]) -> None:
    gc.disable()
    t0 = time.perf_counter()
    deque(fn(), maxlen=0)
    dt = time.perf_counter() - t0
    gc.enable()
    print(f"  {label:<40} {dt:6.2f} s  ({dt / n * 1e6:5.1f} us per submission)")


def run(scheme: Scheme, n: int, rng: random.Random) -> None:
    key = make_key(scheme, rng)
    raw = make_raw(key, n, rng)
    parsed = [normalize_answers(r) for r in raw]

    print(f"{scheme.value}:")
    timed("score (normalised answers)", n, lambda: (score(key, a) for a in parsed))
    timed("validate_answers (API, JSON input)", n, lambda: (validate_answers(key, r) for r in raw))
    timed(
        "score(normalize_answers) (plain path)",
        n,
        lambda: (score(key, normalize_answers(r)) for r in raw),
    )
    texts = [orjson.dumps(r) for r in raw]
    timed("orjson.loads alone", n, lambda: (orjson.loads(t) for t in texts))
    scorer = Scorer(key)
    timed(
        "Scorer.score_json (bulk regrade, text)", n, lambda: (scorer.score_json(t) for t in texts)
    )
    mean = sum(score(key, a).score for a in parsed[:1000]) / min(n, 1000)
    print(f"  mean score of the first 1000: {mean:.2f} / {key.max_score:g}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(42)
    print(
        f"{n} submissions x {N_QUESTIONS} questions ({N_OPTIONS} options, half multiple-answer), "
        f"Python {sys.version.split()[0]}"
    )
    for scheme in Scheme:
        run(scheme, n, rng)


if __name__ == "__main__":
    main()
