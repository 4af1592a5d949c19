import dataclasses

import pytest

from ner_os.config import Settings
from ner_os.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_apply_without_flags_or_environment():
    settings = Settings.resolve(env={})
    assert settings.profile == "gemma3-270m"
    assert settings.index == "ner-os"
    assert settings.opensearch_url is None


def test_environment_overrides_defaults_and_parses_types():
    env = {"NER_OS_INDEX": "docs", "NER_OS_LAYER": "12", "NER_OS_VERIFY_CERTS": "false", "NER_OS_TIMEOUT_S": "2.5"}
    settings = Settings.resolve(env=env)
    assert (settings.index, settings.layer, settings.verify_certs, settings.timeout_s) == ("docs", 12, False, 2.5)


def test_flags_override_environment_and_none_means_unset():
    env = {"NER_OS_INDEX": "docs", "NER_OS_PROFILE": "smollm2-135m"}
    settings = Settings.resolve(env=env, index="flagged", profile=None)
    assert settings.index == "flagged"
    assert settings.profile == "smollm2-135m"


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="NER_OS_LAYER"):
        Settings.resolve(env={"NER_OS_LAYER": "middle"})


def test_unknown_setting_is_refused():
    with pytest.raises(TypeError, match="colour"):
        Settings.resolve(env={}, colour="blue")


def test_password_never_printed():
    settings = Settings.resolve(env={"NER_OS_PASSWORD": "hunter2"})
    assert settings.password == "hunter2"
    assert "hunter2" not in repr(settings)
    assert settings.describe()["password"] == "***"


def test_credentials_in_the_url_are_masked_when_described():
    settings = Settings.resolve(env={"NER_OS_OPENSEARCH_URL": "https://admin:s3cret@localhost:9200"})
    assert settings.describe()["opensearch_url"] == "https://***@localhost:9200"


def test_the_default_profile_runs_in_int8_on_a_cpu_for_documents_and_queries():
    settings = Settings.resolve(env={})
    assert settings.dtype is None and (settings.numerics, settings.query_numerics) == ("int8", "int8")
    queries = settings.for_queries()
    assert queries.dtype == "int8" and queries.replace(dtype=None) == queries  # nothing else changed
    assert dataclasses.replace(queries, dtype=None) == settings


def test_fp32_documents_asked_for_on_a_cpu_keep_int8_descriptions():
    for settings in (Settings.resolve(env={}, dtype="fp32"), Settings.resolve(env={"NER_OS_DTYPE": "fp32"})):
        assert (settings.numerics, settings.query_numerics) == ("fp32", "int8")


@pytest.mark.parametrize("change", [
    dict(device="cuda"), dict(backend="torch"), dict(model="/some/other/weights"),
    dict(layer=9), dict(profile="smollm2-135m"), dict(profile="custom"),
])
def test_numerics_stay_fp32_where_int8_was_not_measured(change):
    settings = Settings.resolve(env={}, **change)
    assert settings.numerics == settings.query_numerics == "fp32"


def test_documents_numerics_asked_for_are_the_queries_too_unless_fp32():
    assert Settings.resolve(env={}, dtype="fp16").query_numerics == "fp16"
    assert Settings.resolve(env={}, dtype="int8", device="cuda").query_numerics == "int8"
    with pytest.raises(ConfigError, match="NER_OS_DTYPE.*fp32, fp16, int8"):
        Settings.resolve(env={"NER_OS_DTYPE": "int4"}).numerics


def test_an_encoder_loaded_without_numerics_takes_the_same_default():
    from ner_os.profiles import PROFILES, default_dtype, resolve_profile

    gemma = PROFILES["gemma3-270m"]
    assert default_dtype(resolve_profile("gemma3-270m"), "onnx", "cpu") == "int8"
    assert default_dtype(resolve_profile("gemma3-270m", layer=15), "onnx", "cpu") == "int8"
    assert default_dtype(resolve_profile("gemma3-270m", layer=9), "onnx", "cpu") == "fp32"
    assert default_dtype(gemma, "onnx", "cuda") == default_dtype(gemma, "torch", "cpu") == "fp32"


def test_query_dtype_is_read_from_flags_and_environment_and_checked():
    assert Settings.resolve(env={"NER_OS_QUERY_DTYPE": "fp32"}).query_numerics == "fp32"
    assert Settings.resolve(env={}, query_dtype="fp16", device="cuda").for_queries().dtype == "fp16"
    assert Settings.resolve(env={}, layer=15).query_numerics == "int8"  # the profile's own layer named
    with pytest.raises(ConfigError, match="NER_OS_QUERY_DTYPE.*fp32, fp16, int8"):
        Settings.resolve(env={"NER_OS_QUERY_DTYPE": "int4"}).query_numerics
