"""The Discord adapter: gateway events and interactions in (``app``), embeds out
(``render``). Thin: questions go through bot.service, articles through bot.intake.

Inside this package ``import discord`` is discord.py (imports are absolute)."""

from bot.discord.app import DossierBot, create_discord_bot, run, serve_discord

__all__ = ["DossierBot", "create_discord_bot", "run", "serve_discord"]
