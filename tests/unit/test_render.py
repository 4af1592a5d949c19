"""Terminal output: highlighted mentions and result lines."""

import pytest

from ner_os.query import MentionMatch, TypeHit, TypeResults
from ner_os.render import format_results, highlight

pytestmark = pytest.mark.unit


def mention(start, end, score, text):
    return MentionMatch(surface=text[start:end], start=start, end=end, score=score, position=0)


def test_highlight_marks_mentions_and_skips_overlaps():
    text = "The T. rex met a Stegosaurus."
    mentions = [mention(17, 28, 0.9, text), mention(4, 10, 0.8, text), mention(6, 10, 0.7, text)]
    assert highlight(text, mentions, lambda s: f"[[{s}]]") == "The [[T. rex]] met a [[Stegosaurus]]."


def test_highlight_cuts_long_texts_around_the_best_mention():
    text = "x" * 500 + " Nile " + "y" * 500
    out = highlight(text, [mention(501, 505, 0.9, text)], lambda s: f"[[{s}]]", width=40)
    assert out.startswith("…") and out.endswith("…") and "[[Nile]]" in out
    assert len(out) < 60


def test_results_are_ranked_lines_with_highlighted_text_and_scored_mentions():
    text = "The T. rex met a\nStegosaurus."
    hit = TypeHit(id="d1", score=0.5, source={"text": text}, mentions=(mention(4, 10, 0.8, text),))
    lines = format_results(TypeResults("dinosaur", "i", "knn", offset=2, hits=(hit,)), lambda s: f"[[{s}]]")
    assert lines == ["'dinosaur': 1 document shown (knn); score: k-NN score of the best mention, (1 + cosine) / 2",
                     "3. 0.5000  d1", "   The [[T. rex]] met a Stegosaurus.", "   T. rex 0.800 [4:10]"]


def test_no_results_say_so():
    assert format_results(TypeResults("dinosaur", "i", "knn", 0, ()), str) == [
        "no document of index 'i' mentions a 'dinosaur'"]
