"""The retrieval core of dossier-bot: load, clean, chunk, embed, store and search articles.

Nothing in this package imports a chat library.
"""
