"""The findings forum: short posts researchers share, kept on the lab's ``forum`` branch.

Each post is one commit adding ``posts/<created>-<id>.json``, written from git objects and
published with a compare-and-swap of the branch ref under the lab lock (like attempts).
"""

from __future__ import annotations

import datetime as dt
import secrets

from pydantic import BaseModel, Field

from experiments.steering import publish
from experiments.store import LabStore

FORUM_REF = "refs/heads/forum"


class Finding(BaseModel):
    """One post in the findings forum."""

    id: str = Field(description="Short random id of the post.")
    session_id: str = Field(description="Session of the researcher who posted it.")
    researcher: str = Field(description="Researcher id (e.g. r0) or a person's name.")
    direction: str | None = Field(None, description="The poster's starting direction.")
    title: str = Field(description="The finding in one line.")
    body: str = Field("", description="What was tried and what it showed.")
    attempt_id: str | None = Field(None, description="The attempt the finding refers to.")
    created_at: str = Field(description="ISO UTC time of posting.")


class Forum:
    """Read and post findings in one lab."""

    def __init__(self, store: LabStore) -> None:
        self.store = store

    def post(self, session_id: str, researcher: str, title: str, body: str = "",
             attempt_id: str | None = None, direction: str | None = None) -> Finding:
        now = dt.datetime.now(dt.UTC)
        finding = Finding(id=secrets.token_hex(4), session_id=session_id, researcher=researcher,
                          direction=direction, title=title.strip()[:200], body=body.strip()[:4000],
                          attempt_id=attempt_id, created_at=now.isoformat(timespec="seconds"))
        path = f"posts/{now.strftime('%Y%m%dT%H%M%S%f')}-{finding.id}.json"
        message = f"finding: {finding.title[:72]}\n\nAar-Kind: finding\nAar-Session: {session_id}\n"
        publish(self.store, FORUM_REF, path, finding.model_dump_json(indent=1), message)
        return finding

    def findings(self, limit: int | None = None, session_prefix: str | None = None) -> list[Finding]:
        """Newest first; optionally only those of sessions whose id starts with a prefix."""
        objects = self.store.objects
        head = objects.ref_sha(FORUM_REF)
        if head is None:
            return []
        posts_entry = objects.lookup(objects.commit_tree(head), "posts")
        if posts_entry is None:
            return []
        out = []
        for name, (sha, _mode) in sorted(objects.read_tree(posts_entry[0]).items(), reverse=True):
            if name.endswith(".json"):
                finding = Finding.model_validate_json(objects.read(sha, "blob"))
                if session_prefix is None or finding.session_id.startswith(session_prefix):
                    out.append(finding)
            if limit is not None and len(out) >= limit:
                break
        return out
