import pytest

from ner_os.config import Settings

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
