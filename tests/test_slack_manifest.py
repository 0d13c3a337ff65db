"""The app manifest declares what the adapter listens to, with the scopes that needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.slack.app import BOT_EVENTS, COMMANDS, SCOPES

MANIFEST = Path(__file__).resolve().parent.parent / "slack-manifest.yaml"


def test_manifest_matches_the_adapter() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(commands) == sorted(COMMANDS)
    settings = manifest["settings"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == sorted(BOT_EVENTS)
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(SCOPES)
    assert settings["interactivity"]["is_enabled"] is True  # the 👍/👎 and Share buttons
    assert settings["socket_mode_enabled"] is True
    # Users can DM the bot only with the Messages tab on and writable.
    home = manifest["features"]["app_home"]
    assert home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]
    for command in manifest["features"]["slash_commands"]:
        assert len(command["description"]) <= 100
