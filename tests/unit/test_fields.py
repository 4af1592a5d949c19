"""How a mention's vector travels to the index and is read back from its stored source."""

import numpy as np
import pytest

from ner_os.fields import SOURCE_WITHOUT_VECTORS, VECTOR_BYTES_FIELD, VECTOR_FIELD, stored_vector, vector_fields

pytestmark = pytest.mark.unit


def test_a_vector_comes_back_from_its_bytes_bit_for_bit():
    vector = np.random.default_rng(0).standard_normal(756).astype(np.float32)
    fields = vector_fields(vector)
    assert fields["vector"] == vector.tolist()
    assert isinstance(fields["vector_bytes"], str) and len(fields["vector_bytes"]) == 4 * ((756 * 4 + 2) // 3)
    read = stored_vector({"vector_bytes": fields["vector_bytes"]})
    assert read.dtype == np.float32 and np.array_equal(read, vector)


def test_the_bytes_win_over_the_float_list_and_an_older_index_s_float_list_still_reads():
    assert np.array_equal(stored_vector({"vector": [9.0], **{"vector_bytes": vector_fields([1.0, 2.0])["vector_bytes"]}}),
                          [1.0, 2.0])
    assert np.array_equal(stored_vector({"vector": [0.5, 0.25]}), np.float32([0.5, 0.25]))
    assert stored_vector({"start": 0}) is None


def test_what_queries_return_leaves_out_both_forms_of_the_vector():
    assert set(SOURCE_WITHOUT_VECTORS["excludes"]) == {VECTOR_FIELD, VECTOR_BYTES_FIELD}
