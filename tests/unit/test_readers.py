import json
from pathlib import Path

import pytest

from ner_os.errors import ConfigError, NerOsError
from ner_os.evaluation.readers import TYPE_NAMES_FILE, FormatError, GoldMention, read_bio, read_type_names

pytestmark = pytest.mark.unit

FEWNERD_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "fewnerd-inter" / "inter_test.txt"


def read(tmp_path, content: str, **options):
    path = tmp_path / "data.txt"
    path.write_text(content, encoding="utf-8")
    return list(read_bio(path, **options))


def surfaces(sentence):
    return [(sentence.surface(m), m.label) for m in sentence.mentions]


def test_bio_tags_become_character_spans_of_the_space_joined_text(tmp_path):
    [sentence] = read(tmp_path, "The\tO\nPort\tB-loc\nof\tI-loc\nSan\tI-loc\nDiego\tI-loc\n.\tO\n")
    assert sentence.text == "The Port of San Diego ."
    assert sentence.mentions == [GoldMention(4, 21, "loc")]
    assert sentence.line == 1


def test_sentences_split_on_blank_lines_and_keep_their_first_line(tmp_path):
    content = "A\tB-x\n\n\nB\tO\nC\tB-y\n\n"
    first, second = read(tmp_path, content)
    assert (first.line, second.line) == (1, 4)
    assert surfaces(first) == [("A", "x")] and surfaces(second) == [("C", "y")]


def test_last_sentence_without_a_trailing_blank_line_is_kept(tmp_path):
    assert [s.text for s in read(tmp_path, "A\tO\n\nB\tB-x")] == ["A", "B"]


def test_adjacent_b_tags_start_separate_mentions(tmp_path):
    [sentence] = read(tmp_path, "Ann\tB-per\nBob\tB-per\nand\tO\nCy\tB-per\nDe\tI-per\n")
    assert surfaces(sentence) == [("Ann", "per"), ("Bob", "per"), ("Cy De", "per")]


def test_an_inside_tag_of_another_label_starts_a_new_mention(tmp_path):
    # IOB1 and sloppy files: I- after O, or after another label, opens a mention
    [sentence] = read(tmp_path, "x\tO\nA\tI-a\nB\tI-b\nC\tI-b\n")
    assert surfaces(sentence) == [("A", "a"), ("B C", "b")]


def test_bioes_tags(tmp_path):
    [sentence] = read(tmp_path, "A\tS-a\nB\tB-b\nC\tI-b\nD\tE-b\nE\tS-b\n")
    assert surfaces(sentence) == [("A", "a"), ("B C D", "b"), ("E", "b")]


def test_io_tags_merge_a_run_of_one_label(tmp_path):
    # Few-NERD's own IO files: a run of the same bare label is one mention
    [sentence] = read(tmp_path, "New\tlocation-GPE\nYork\tlocation-GPE\nis\tO\nbig\tO\n")
    assert surfaces(sentence) == [("New York", "location-GPE")]


def test_conll_columns_comments_and_docstart(tmp_path):
    content = (
        "-DOCSTART- -X- -X- O\n\n"
        "# sent_id = 1\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n"
    )
    [sentence] = read(tmp_path, content)
    assert sentence.text == "EU rejects German call"
    assert surfaces(sentence) == [("EU", "ORG"), ("German", "MISC")]
    assert sentence.line == 4
    [chunks] = read(tmp_path, content, tag_column=2)
    assert surfaces(chunks) == [("EU", "NP"), ("rejects", "VP"), ("German call", "NP")]


def test_a_hash_token_is_a_token_not_a_comment(tmp_path):
    content = "the\tO\n#\tB-product_car\n36\tI-product_car\nToyota\tI-product_car\n\n# a comment\nx\tO\n"
    first, second = read(tmp_path, content)
    assert first.text == "the # 36 Toyota"
    assert surfaces(first) == [("# 36 Toyota", "product_car")]
    assert second.text == "x"
    [spaced] = read(tmp_path, "# B-tag\nrest I-tag\n")
    assert surfaces(spaced) == [("# rest", "tag")]


def test_a_line_without_a_tag_is_a_format_error_naming_file_and_line(tmp_path):
    with pytest.raises(FormatError, match=r"data\.txt:2: expected a token and a tag"):
        read(tmp_path, "A\tO\nlonely\n")
    assert issubclass(FormatError, NerOsError)


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"A\tB-x\r\nB\tI-x\r\n\r\nC\tO\r\n")
    first, second = list(read_bio(path))
    assert surfaces(first) == [("A B", "x")] and second.text == "C"


@pytest.mark.skipif(not FEWNERD_TEST.exists(), reason=f"Few-NERD data not found at {FEWNERD_TEST}")
def test_the_fewnerd_inter_test_file_matches_its_readme():
    sentences = list(read_bio(FEWNERD_TEST))
    assert len(sentences) == 14_006
    assert sum(len(s.mentions) for s in sentences) == 28_341
    assert len({m.label for s in sentences for m in s.mentions}) == 17
    tokens = sum(len(s.tokens) for s in sentences)
    with FEWNERD_TEST.open(encoding="utf-8") as handle:
        assert tokens == sum(1 for line in handle if line.strip())  # no token lost, "#" included


def test_the_one_read_type_names_takes_the_file_and_checks_every_description(tmp_path):
    path = tmp_path / TYPE_NAMES_FILE
    with pytest.raises(ConfigError, match=r"type_names\.json: not found \(no such file\)"):
        read_type_names(path)
    with pytest.raises(ConfigError, match="a folder, not"):
        read_type_names(tmp_path)
    path.write_text(json.dumps({"person_actor": "actor", "art_film": "   "}))
    with pytest.raises(ConfigError, match="description of 'art_film' must be non-empty text"):
        read_type_names(path)
    path.write_text(json.dumps({"person_actor": " film\tactor "}))
    assert read_type_names(path) == {"person_actor": "film actor"}
