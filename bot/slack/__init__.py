"""The Slack adapter: Bolt events, commands and actions in (``app``), Block Kit out
(``render``). Thin: questions go through bot.service, articles through bot.intake."""

from bot.slack.app import SlackService, create_slack_app, run, start

__all__ = ["SlackService", "create_slack_app", "run", "start"]
