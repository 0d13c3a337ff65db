"""Configuration: every bad variable is named with what to do; secrets never printed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli_ops import config_group
from bot.config import VARIABLES, ConfigError, Settings, mask

BOT_TOKEN = "xoxb-1111111111-2222222222-SeCrEtBoTtOkEnVaLuE"
APP_TOKEN = "xapp-1-A0000000000-1234567890-SeCrEtApPtOkEn"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
DISCORD = "MTA5ODc2NTQzMjEwOTg3NjU0.GAbCdE.SeCrEtDiScOrDtOkEnVaLuEaBcDeFgHiJk"


def problems_for(**env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return list(info.value.problems)


def test_defaults_need_nothing() -> None:
    s = Settings.from_env({})
    assert s.corpus_dir == Path("corpus")
    assert s.health_port == 8080
    assert s.platforms == ()
    assert s.log_format == "text" and s.log_level == "INFO"
    assert s.watch is False


def test_values_are_parsed() -> None:
    s = Settings.from_env({
        "DOSSIER_CORPUS_DIR": " /data/corpus ", "DOSSIER_HEALTH_PORT": "0",
        "DOSSIER_ADMINS": "U012AB3CD, 123456789012345678 <@U999>", "DOSSIER_WATCH": "yes",
        "DOSSIER_LOG_FORMAT": "JSON", "DOSSIER_LOG_LEVEL": "debug",
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "DISCORD_TOKEN": DISCORD,
        "SLACK_API_URL": "http://127.0.0.1:9/api", "DISCORD_GUILD_ID": "42",
    })
    assert s.corpus_dir == Path("/data/corpus")
    assert s.health_port == 0
    assert s.admins == {"U012AB3CD", "123456789012345678", "U999"}
    assert s.watch is True and s.log_format == "json" and s.log_level == "DEBUG"
    assert s.platforms == ("slack", "discord") and s.slack_mode == "socket"
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.discord_guild_id == 42


@pytest.mark.parametrize(("env", "name", "hint"), [
    ({"DOSSIER_HEALTH_PORT": "eighty"}, "DOSSIER_HEALTH_PORT", "whole number"),
    ({"DOSSIER_HEALTH_PORT": "70000"}, "DOSSIER_HEALTH_PORT", "from 0 to 65535"),
    ({"DOSSIER_RATE_LIMIT": "-1"}, "DOSSIER_RATE_LIMIT", "from 0 to"),
    ({"DOSSIER_LOG_FORMAT": "xml"}, "DOSSIER_LOG_FORMAT", "text, json"),
    ({"DOSSIER_LOG_LEVEL": "loud"}, "DOSSIER_LOG_LEVEL", "INFO"),
    ({"DOSSIER_WATCH": "sometimes"}, "DOSSIER_WATCH", "1/true/yes"),
    ({"DOSSIER_SHUTDOWN_GRACE": "soon"}, "DOSSIER_SHUTDOWN_GRACE", "seconds"),
    ({"DOSSIER_ADMINS": "@alice"}, "DOSSIER_ADMINS", "Copy member ID"),
    ({"DISCORD_GUILD_ID": "my server"}, "DISCORD_GUILD_ID", "Copy Server ID"),
    ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL", "http(s) URL"),
    ({"DOSSIER_HEALTH_HOST": "local host"}, "DOSSIER_HEALTH_HOST", "0.0.0.0"),
    ({"DOSSIER_HEALTH_PORT": "3000"}, "DOSSIER_SLACK_PORT", "different ports"),
    ({"DOSSIER_EMBED_BACKEND": "bogus"}, "DOSSIER_EMBED_BACKEND", "onnx, torch"),
    ({"DOSSIER_MAX_ARTICLE_MB": "abc"}, "DOSSIER_MAX_ARTICLE_MB", "number of MB"),
    ({"DOSSIER_MAX_ARTICLE_MB": "-3"}, "DOSSIER_MAX_ARTICLE_MB", "0.001 to 1024 MB"),
    ({"DOSSIER_PDF_SECONDS": "0"}, "DOSSIER_PDF_SECONDS", "1 to 3600 seconds"),
    ({"DOSSIER_PDF_MEMORY_MB": "64"}, "DOSSIER_PDF_MEMORY_MB", "from 128 to 65536"),
])
def test_malformed_variable_is_named_with_what_to_do(env: dict[str, str], name: str,
                                                     hint: str) -> None:
    (problem,) = problems_for(**env)
    assert name in problem
    assert hint in problem


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DOSSIER_HEALTH_PORT": "x", "DOSSIER_LOG_FORMAT": "xml",
                           "SLACK_BOT_TOKEN": "not-a-token"})
    assert len(info.value.problems) == 3
    message = str(info.value)
    assert message.startswith("3 problems in the configuration:")
    for name in ("DOSSIER_HEALTH_PORT", "DOSSIER_LOG_FORMAT", "SLACK_BOT_TOKEN"):
        assert name in message


@pytest.mark.parametrize(("env", "expected"), [
    ({"SLACK_BOT_TOKEN": APP_TOKEN}, "belongs in SLACK_APP_TOKEN"),
    ({"SLACK_APP_TOKEN": BOT_TOKEN}, "belongs in SLACK_BOT_TOKEN"),
    ({"SLACK_BOT_TOKEN": "xoxp-123-456-SeCrEtUsEr"}, "user token"),
    ({"SLACK_BOT_TOKEN": "SeCrEtWhatever12345"}, "should start with xoxb-"),
    ({"SLACK_SIGNING_SECRET": "abc SeCrEt"}, "without them"),
    ({"DISCORD_TOKEN": "Bot " + DISCORD}, "'Bot '"),
    ({"DISCORD_TOKEN": BOT_TOKEN}, "holds a Slack token"),
])
def test_bad_secrets_are_explained_but_never_echoed(env: dict[str, str], expected: str) -> None:
    (problem,) = problems_for(**env)
    assert expected in problem
    assert "SeCrEt" not in problem


def test_required_platform_variables_are_named() -> None:
    s = Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN})
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is not set"):
        s.require_platform("slack")  # no app token: HTTP mode, which verifies signatures
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN is not set"):
        s.require_platform("slack", http=False)
    with pytest.raises(ConfigError, match=r"DISCORD_TOKEN is not set.*Developer Portal"):
        s.require_platform("discord")
    Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN,
                       "SLACK_SIGNING_SECRET": SIGNING}).require_platform("slack")
    with pytest.raises(ConfigError, match="unknown platform 'teams'"):
        s.require_platform("teams")


def test_path_problems_name_the_variable(tmp_path: Path) -> None:
    missing = Settings(corpus_dir=tmp_path / "nope", index_dir=tmp_path / "idx")
    (problem,) = missing.path_problems()
    assert "DOSSIER_CORPUS_DIR" in problem and "does not exist" in problem
    (tmp_path / "file").write_text("x")
    clash = Settings(corpus_dir=tmp_path, index_dir=tmp_path / "file")
    (problem,) = clash.path_problems()
    assert "DOSSIER_INDEX_DIR" in problem and "is a file" in problem
    assert Settings(corpus_dir=tmp_path, index_dir=tmp_path / "a" / "b").path_problems() == []


def test_mask_keeps_only_public_prefix_and_length() -> None:
    assert mask(None) == "(not set)"
    assert mask(BOT_TOKEN) == f"xoxb-****({len(BOT_TOKEN)} chars)"
    assert mask(DISCORD) == f"****({len(DISCORD)} chars)"
    assert "SeCrEt" not in repr(Settings.from_env({"DISCORD_TOKEN": DISCORD}))


def test_every_settings_field_has_a_variable() -> None:
    # VARIABLES is derived from the model, so check what the derivation needs of each field.
    assert [v.field for v in VARIABLES] == list(Settings.model_fields)
    assert all(v.name.isupper() and v.help for v in VARIABLES)
    assert len({v.name for v in VARIABLES}) == len(VARIABLES)
    assert {v.name for v in VARIABLES if v.secret} == {
        "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "DISCORD_TOKEN"}


def test_pydantic_wording_never_reaches_the_user() -> None:
    problems = problems_for(DOSSIER_HEALTH_PORT="x", DOSSIER_WATCH="maybe",
                            DOSSIER_ADMINS='["U1"]',  # JSON is not decoded: our message
                            DISCORD_GUILD_ID="g", DOSSIER_CONVERSATION_TTL="0")
    assert len(problems) == 5
    for problem in problems:
        assert "Value error" not in problem and "Input should" not in problem
        assert "pydantic" not in problem
    assert any("is not a user ID" in p for p in problems)


def test_blank_values_mean_unset_and_settings_ignore_the_process_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings.from_env({"DOSSIER_HEALTH_PORT": "  ", "DISCORD_TOKEN": ""})
    assert s.health_port == 8080 and s.discord_token is None
    # Settings(...) takes only its arguments; from_env is what reads the environment.
    monkeypatch.setenv("DISCORD_TOKEN", DISCORD)
    assert Settings().discord_token is None
    assert Settings.from_env(dotenv=False).discord_token == DISCORD


def test_a_bad_value_given_in_code_is_not_echoed() -> None:
    with pytest.raises(ValueError) as info:
        Settings(slack_signing_secret="abc SeCrEt")
    assert "SeCrEt" not in str(info.value)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A private os.environ with none of our variables, and cwd in an empty folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))}
    monkeypatch.setattr(os, "environ", env)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    return env


def test_dotenv_is_read_and_the_environment_wins(clean_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"# deployment\nSLACK_BOT_TOKEN={BOT_TOKEN}\nDOSSIER_HEALTH_PORT=9100\n"
        "DOSSIER_RATE_LIMIT='5'\n")
    clean_env["DOSSIER_HEALTH_PORT"] = "9200"
    s = Settings.from_env()
    assert s.slack_bot_token == BOT_TOKEN
    assert s.health_port == 9200
    assert s.rate_limit_per_minute == 5


def test_config_check_masks_secrets_and_reports_sources(clean_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SLACK_SIGNING_SECRET={SIGNING}\n")
    clean_env.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "DISCORD_TOKEN": DISCORD,
                      "DOSSIER_ADMINS": "U1"})
    result = CliRunner().invoke(config_group, ["check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["platforms"] == ["slack (http mode)", "discord"]
    by_name = {v["name"]: v for v in report["variables"]}
    assert by_name["SLACK_SIGNING_SECRET"]["source"] == ".env"
    assert by_name["SLACK_BOT_TOKEN"]["source"] == "env"
    assert by_name["DOSSIER_HEALTH_PORT"] == {**by_name["DOSSIER_HEALTH_PORT"],
                                              "value": 8080, "source": "default"}
    assert by_name["DOSSIER_WATCH"]["value"] is False
    assert by_name["DOSSIER_SHUTDOWN_GRACE"]["value"] == 25.0
    assert by_name["DOSSIER_EMBED_MODEL"]["value"] is None
    assert by_name["SLACK_APP_TOKEN"]["value"] is None
    assert by_name["DOSSIER_ADMINS"]["value"] == ["U1"]
    assert by_name["SLACK_BOT_TOKEN"]["value"].startswith("xoxb-****")
    text = CliRunner().invoke(config_group, ["check"]).output
    for secret in (BOT_TOKEN, DISCORD, SIGNING):
        assert secret not in result.output and secret not in text
        assert secret[8:20] not in result.output and secret[8:20] not in text
    assert "configuration OK" in text


def test_config_check_fails_with_every_problem(clean_env: dict[str, str]) -> None:
    clean_env.update({"DOSSIER_HEALTH_PORT": "http", "SLACK_BOT_TOKEN": BOT_TOKEN,
                      "DOSSIER_CORPUS_DIR": "missing-folder"})
    result = CliRunner().invoke(config_group, ["check"])
    assert result.exit_code == 1
    assert "DOSSIER_HEALTH_PORT='http' is not a whole number" in result.output
    assert BOT_TOKEN not in result.output
    # The settings did not load, so the folder is not checked yet; fix the port and rerun.
    clean_env["DOSSIER_HEALTH_PORT"] = "8081"
    result = CliRunner().invoke(config_group, ["check", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and not report["ok"]
    assert any("DOSSIER_CORPUS_DIR" in p for p in report["problems"])
    assert any("SLACK_SIGNING_SECRET is not set" in p for p in report["problems"])


def test_every_variable_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    missing = [v.name for v in VARIABLES if f"| `{v.name}` |" not in doc]
    assert missing == []


def test_a_named_env_file_that_is_missing_is_warned(monkeypatch, tmp_path: Path) -> None:
    from bot.cli_ops import check_config

    monkeypatch.setenv("DOSSIER_ENV_FILE", str(tmp_path / "nope.env"))
    report = check_config({})
    assert any("DOSSIER_ENV_FILE" in w and "does not exist" in w for w in report["warnings"])
    monkeypatch.delenv("DOSSIER_ENV_FILE")
    assert not any("DOSSIER_ENV_FILE" in w for w in check_config({})["warnings"])


def test_lines_of_dotenv_that_are_not_settings_are_named_without_their_text(
        clean_env: dict[str, str], tmp_path: Path, caplog) -> None:
    (tmp_path / ".env").write_text(
        "DOSSIER_RATE_LIMIT=5\n"
        f"SLACK_BOT_TOKEN {BOT_TOKEN}\n"  # the "=" forgotten
        "export DOSSIER_HEALTH_PORT=9100\n"
        "# a comment\n"
        '"DOSSIER_WATCH\n')
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_env()
        Settings.from_env()
    assert (settings.rate_limit_per_minute, settings.health_port) == (5, 9100)
    assert settings.slack_bot_token is None
    # Said once, in our words (python-dotenv's own warning is not repeated).
    assert [r.getMessage().split(" (run")[0] for r in caplog.records] == [
        f"{tmp_path / '.env'} line 2 is not a valid NAME=value line; no setting is read from it",
        f"{tmp_path / '.env'} line 5 is not a valid NAME=value line; no setting is read from it"]
    result = CliRunner().invoke(config_group, ["check", "--json"])
    report = json.loads(result.output)
    assert [w for w in report["warnings"] if ".env line" in w] == [
        f"{tmp_path / '.env'} line 2 is not a valid NAME=value line; no setting is read from it",
        f"{tmp_path / '.env'} line 5 is not a valid NAME=value line; no setting is read from it"]
    assert BOT_TOKEN[8:20] not in result.output + caplog.text
