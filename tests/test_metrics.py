import json

import pytest
import sacrebleu

from hf_l2mt.evaluation.metrics import save_scores, score_translations

HYP = ["the cat sat on the mat", "a dog barks loudly", "hello world"]
REF = ["the cat sat on the mat", "the dog barked loudly", "hello there world"]


def test_scores_equal_sacrebleu_corpus_functions():
    scores = score_translations(HYP, REF)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYP, [REF]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYP, [REF]).score)
    assert scores["ter"] == pytest.approx(sacrebleu.corpus_ter(HYP, [REF]).score)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert 0 < scores["bleu"] < 100


def test_signatures_name_the_metric_settings(tmp_path):
    scores = score_translations(HYP, REF)
    assert scores["signatures"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert "nc:6|nw:0" in scores["signatures"]["chrf"]
    saved = json.loads(open(save_scores(scores, tmp_path / "scores.json")).read())
    assert saved == scores


def test_perfect_translation_scores_100():
    scores = score_translations(REF, REF)
    assert scores["bleu"] == pytest.approx(100) and scores["exact_match"] == 100 and scores["ter"] == 0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        score_translations(HYP[:2], REF)
