"""Caption metrics: exact match, corpus BLEU-4 (Papineni et al., 2002) and CIDEr-D (Vedantam et al., 2015).

Every function takes hypotheses (N strings) and references (N lists of strings, one list per image) and
compares them as lower-cased words, punctuation dropped (vision.caption_data.words).
"""

import math
from collections import Counter

from shared.errors import InputError
from vision.caption_data import words


def _check(hypotheses, references) -> None:
    if len(hypotheses) != len(references):
        raise InputError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists; "
                         "pass one per image")
    if any(not refs for refs in references):
        raise InputError("every image needs at least one reference caption")


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def exact_match(hypotheses: list[str], references: list[list[str]]) -> float:
    """Fraction (0-1) of hypotheses whose words equal those of one of their references."""
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    hits = sum(words(h) in [words(r) for r in refs] for h, refs in zip(hypotheses, references))
    return hits / len(hypotheses)


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus BLEU (0-1) with uniform weights over 1..max_n-grams, as in the paper.

    Clipped n-gram counts and hypothesis n-gram counts are summed over the corpus before the precisions are
    taken; the brevity penalty compares the total hypothesis length with the total of, per sentence, the
    reference length closest to the hypothesis' (the shorter on a tie). No smoothing: a corpus without a
    single matching n-gram of some order scores 0.
    """
    _check(hypotheses, references)
    matched, total = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        h, rs = words(hyp), [words(r) for r in refs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(h, n)
            most = Counter()
            for r in rs:
                most |= ngrams(r, n)  # the largest count of each n-gram in any one reference
            matched[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            total[n - 1] += sum(counts.values())
    if hyp_len == 0 or min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def _tfidf(tokens: list[str], df: Counter, log_n: float, max_n: int):
    """Per n-gram order: ({n-gram: tf·idf}, its L2 norm); and the sentence length used by the penalty."""
    vectors, norms = [], []
    for n in range(1, max_n + 1):
        vec = {g: c * (log_n - math.log(max(1.0, df[g]))) for g, c in ngrams(tokens, n).items()}
        vectors.append(vec)
        norms.append(math.sqrt(sum(v * v for v in vec.values())))
    return vectors, norms, len(tokens)


def cider_d(hypotheses: list[str], references: list[list[str]], max_n: int = 4, sigma: float = 6.0) -> float:
    """CIDEr-D, the variant of the COCO caption evaluation (scores around 0-10, higher is better).

    n-gram document frequencies come from the references of this corpus; each order's score is the cosine
    of TF-IDF vectors with the hypothesis counts clipped to the reference's, times a Gaussian penalty on the
    length difference; orders are averaged, references averaged, times 10; the corpus score is the mean over
    images.
    """
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    refs_tokens = [[words(r) for r in refs] for refs in references]
    df: Counter = Counter()
    for refs in refs_tokens:
        df.update({g for r in refs for n in range(1, max_n + 1) for g in ngrams(r, n)})
    log_n = math.log(float(len(hypotheses)))
    total = 0.0
    for hyp, refs in zip(hypotheses, refs_tokens):
        h_vec, h_norm, h_len = _tfidf(words(hyp), df, log_n, max_n)
        score = 0.0
        for ref in refs:
            r_vec, r_norm, r_len = _tfidf(ref, df, log_n, max_n)
            penalty = math.exp(-((h_len - r_len) ** 2) / (2 * sigma ** 2))
            for n in range(max_n):
                if h_norm[n] and r_norm[n]:
                    ref = r_vec[n]
                    dot = sum(min(v, ref.get(g, 0.0)) * ref.get(g, 0.0) for g, v in h_vec[n].items())
                    score += penalty * dot / (h_norm[n] * r_norm[n])
        total += 10.0 * score / max_n / len(refs)
    return total / len(hypotheses)


def caption_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """exact_match and bleu4 in percent, and cider (CIDEr-D)."""
    return {"exact_match": 100.0 * exact_match(hypotheses, references),
            "bleu4": 100.0 * corpus_bleu(hypotheses, references),
            "cider": cider_d(hypotheses, references)}
