"""The registered types' records and update scripts, without a cluster."""

import pytest

from ner_os.store import types_index

pytestmark = pytest.mark.unit


def test_records_are_keyed_by_index_and_name():
    assert types_index.record_id("books", "river") != types_index.record_id("books-river", "")


def test_scripts_take_the_type_name_as_a_parameter_only():
    for script in (types_index.ADD_TYPE_SCRIPT, types_index.REMOVE_TYPE_SCRIPT):
        assert "params.type" in script
    action = types_index.script_action("i", "d", types_index.ADD_TYPE_SCRIPT, {"type": "x'); drop", "positions": [1]})
    assert action["script"]["source"] == types_index.ADD_TYPE_SCRIPT
    assert action["script"]["params"]["type"] == "x'); drop"
