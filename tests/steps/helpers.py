"""Small builders for step tests: canonical frames from (prompt, response) pairs."""

from __future__ import annotations

from sftdata.records import frame_from_records


def frame_of(pairs, ids=None, meta=None):
    """A canonical frame with one user and one assistant turn per (prompt, response)."""
    records = []
    for i, (prompt, response) in enumerate(pairs):
        records.append({
            "id": ids[i] if ids else f"r{i}",
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": response}],
            "source": "test",
            "meta": (meta[i] if meta else {}),
        })
    return frame_from_records(records)
