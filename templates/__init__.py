"""Jinja2 templates shipped with sftdata (Self-Instruct prompts, report HTML, chat templates)."""
