"""Caption metrics against hand-computed values (and nltk's BLEU when it is installed)."""

import math

import pytest

from shared.errors import InputError
from vision.caption_metrics import caption_scores, cider_d, corpus_bleu, exact_match


def test_bleu_of_one_sentence_by_hand():
    hyp = ["a red circle above a blue square"]
    refs = [["a red circle above a green square"]]
    # clipped n-gram matches / n-grams of the hypothesis: 6/7, 4/6, 3/5, 2/4; equal lengths: no brevity
    # penalty
    expected = (6 / 7 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25
    assert corpus_bleu(hyp, refs) == pytest.approx(expected)


def test_bleu_sums_counts_over_the_corpus_and_picks_the_closest_reference_length():
    hyps = ["a red circle above a blue square", "a small square"]
    refs = [["a red circle above a green square"], ["a small blue square", "the small square"]]
    # second pair: unigrams 3/3, bigrams 2/2 (one from each reference), trigrams 0/1, no 4-grams;
    # its closest reference has 3 words, so the corpus lengths are 10 and 10
    expected = (9 / 10 * 6 / 8 * 3 / 6 * 2 / 4) ** 0.25
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)


def test_bleu_brevity_penalty_and_zero_matches():
    # every n-gram matches, but 5 words against a 7-word reference: BP = exp(1 - 7/5)
    assert corpus_bleu(["a red circle above a"], [["a red circle above a blue square"]]) == \
        pytest.approx(math.exp(1 - 7 / 5))
    assert corpus_bleu(["blue square"], [["a red circle"]]) == 0.0
    assert corpus_bleu(["A red circle, above a blue square."], [["a red circle above a blue square"]]) == 1.0


def test_bleu_matches_nltk():
    # every hypothesis has 4-grams: nltk counts a sentence without n-grams of some order as one unmatched one
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score", reason="nltk is the reference BLEU")
    hyps = ["a red circle above a blue square", "a small square left of a big green circle",
            "a black cat on a mat"]
    refs = [["a red circle above a green square"], ["a small blue square left of a big green circle",
                                                      "the small square left of the green circle"],
            ["a cat on a mat", "one cat"]]
    expected = nltk_bleu.corpus_bleu([[r.split() for r in rs] for rs in refs], [h.split() for h in hyps])
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)


def test_exact_match_ignores_case_and_punctuation_and_takes_any_reference():
    hyps = ["A red circle.", "a blue square", "a green cross"]
    refs = [["a red circle"], ["a small blue square", "a blue square"], ["a green diamond"]]
    assert exact_match(hyps, refs) == pytest.approx(2 / 3)


def test_cider_d_by_hand():
    # two images; with unigrams only: df(red)=1, df(circle)=2, df(blue)=1, df(square)=0, and
    # idf = ln 2 - ln max(1, df). Image 1 equals its reference: cosine 1 -> 10. Image 2 shares "blue"
    # (idf ln 2) and not "square" (idf ln 2, absent from the reference):
    # cosine ln²2 / (√2 ln 2 · ln 2) = 1/√2, so 10/√2
    hyps, refs = ["red circle", "blue square"], [["red circle"], ["blue circle"]]
    assert cider_d(hyps, refs, max_n=1) == pytest.approx((10 + 10 / math.sqrt(2)) / 2)


def test_cider_d_prefers_the_right_caption_and_penalises_length():
    refs = [["a red circle above a blue square"], ["a green triangle"], ["a small yellow cross"]]
    right = ["a red circle above a blue square", "a green triangle", "a small yellow cross"]
    wrong = ["a red circle above a green square", "a green triangle", "a small yellow cross"]
    padded = ["a red circle above a blue square square square square", *right[1:]]
    assert cider_d(right, refs) > cider_d(wrong, refs)
    assert cider_d(right, refs) > cider_d(padded, refs)


def test_scores_are_percent_and_inputs_are_checked():
    scores = caption_scores(["a red circle"], [["a red circle"]])
    assert scores["exact_match"] == 100.0 and scores["bleu4"] == 0.0  # three words have no 4-gram
    with pytest.raises(InputError, match="one per image"):
        corpus_bleu(["a"], [])
    with pytest.raises(InputError, match="at least one reference"):
        exact_match(["a"], [[]])
