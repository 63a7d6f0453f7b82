"""The web dashboard (``aar ui``): sessions, timelines, leaderboards, attempts, reviews, the
findings forum and live progress, served from the lab repository with server-side templates."""

from agent.ui.app import create_app

__all__ = ["create_app"]
