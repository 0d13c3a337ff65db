"""The chat layer of dossier-bot: answers, renderers, adapters, CLI and configuration."""
