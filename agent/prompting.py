"""Every text a model reads is a template in prompts/; this module renders them.

``render(name, **vars)`` renders ``prompts/<name>.md`` (Jinja2, undefined variables are errors);
``prompt_text(name)`` returns a page verbatim (the idea contract is also a user document);
``prompt_versions()`` fingerprints every prompt file for session manifests.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from sandbox.errors import HarnessError

PROMPTS_ENV = "AAR_PROMPTS_DIR"
DEFAULT_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
PROMPT_SUFFIXES = (".md", ".toml")


def prompts_dir() -> Path:
    path = Path(os.environ.get(PROMPTS_ENV) or DEFAULT_PROMPTS)
    if not path.is_dir():
        raise HarnessError(f"prompt folder {path} not found: set {PROMPTS_ENV} to the repository's prompts/")
    return path


def _filename(name: str) -> str:
    return name if name.endswith(PROMPT_SUFFIXES) else f"{name}.md"


def fmt_num(value: float | int | None, digits: int = 3, signed: bool = False) -> str:
    """A number for a prompt: fixed digits, 'n/a' for None."""
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


@lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False,
    )
    env.filters["num"] = fmt_num
    return env


def render(name: str, **variables: Any) -> str:
    """Render ``prompts/<name>.md`` with ``variables``; a missing variable is an error."""
    env = _environment(str(prompts_dir()))
    try:
        return env.get_template(_filename(name)).render(**variables).strip() + "\n"
    except jinja2.TemplateNotFound as exc:
        raise HarnessError(f"prompt template {exc.name} is missing from {prompts_dir()}") from exc
    except jinja2.UndefinedError as exc:
        raise HarnessError(f"prompt template {_filename(name)}: {exc.message}") from exc


def prompt_text(name: str) -> str:
    """A prompt page verbatim (no templating), e.g. the idea contract."""
    path = prompts_dir() / _filename(name)
    if not path.is_file():
        raise HarnessError(f"prompt page {path} is missing: restore it from the repository")
    return path.read_text()


def prompt_table(name: str) -> dict[str, Any]:
    """A TOML prompt file (e.g. tool descriptions) as a dict."""
    return tomllib.loads(prompt_text(name if name.endswith(".toml") else f"{name}.toml"))


def directions() -> list[str]:
    """The starting directions in prompts/directions.md: one per '- ' bullet."""
    lines = prompt_text("directions").splitlines()
    return [line[2:].strip() for line in lines if line.startswith("- ") and line[2:].strip()]


def prompt_versions() -> dict[str, str]:
    """Name -> sha256 prefix of every prompt file, to record which prompts a session used."""
    folder = prompts_dir()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in PROMPT_SUFFIXES)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in files}
