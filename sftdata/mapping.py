"""How a file's own layout maps onto sftdata's formats: column names, turn keys, roles.

``ColumnMapping`` renames one row into the layout sftdata's readers take (the reader
applies it: ``BatchReader(..., mapping=...)``). It is made from

- ``--columns THEIRS=OURS,...`` and ``--roles THEIRS=OURS,...`` (``mapping_from_options``),
  e.g. OpenOrca ``question=instruction,response=output,system_prompt=system``, lmsys
  ``conversation=messages``, ShareGPT with ``speaker=from,text=value`` turn keys and
  ``--roles bot=gpt``; OURS names an Alpaca / ShareGPT / OpenAI column, or a turn key
  (``from``/``value``, ``role``/``content``); roles may be given in either vocabulary
  (``user`` or ``human``) and are translated to the target format's;
- a LLaMA-Factory ``dataset_info.json`` entry (``mapping_from_entry``), with its
  defaults and its rule that a ``columns`` block nulls every column it leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sftdata.errors import RecordError, UserError

SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system", "observation_tag": "observation",
                 "function_tag": "function_call"}
TURNS = {"sharegpt": ("conversations", "from", "value"), "openai": ("messages", "role", "content")}
TO_SHAREGPT = {"user": "human", "assistant": "gpt", "tool": "observation"}
TO_OPENAI = {"human": "user", "gpt": "assistant", "observation": "tool"}
FIELD_FORMAT = {"instruction": "alpaca", "input": "alpaca", "output": "alpaca", "history": "alpaca",
                "conversations": "sharegpt", "from": "sharegpt", "value": "sharegpt",
                "messages": "openai", "role": "openai", "content": "openai"}
TOP_FIELDS = ("instruction", "input", "output", "system", "history", "conversations", "messages", "tools",
              "id", "source", "meta")


@dataclass(frozen=True)
class ColumnMapping:
    """How a file's layout maps onto one of sftdata's formats.

    ``columns`` maps sftdata field -> the file's column (e.g. ``instruction`` -> ``question``);
    ``roles`` maps the file's role values -> sftdata's (ShareGPT: system / human / gpt /
    observation / function_call; OpenAI: system / user / assistant / tool), and
    ``role_key`` / ``content_key`` name the turn keys.
    """

    format: str
    columns: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    role_key: str | None = None
    content_key: str | None = None
    file_name: str | None = None

    def apply(self, row: dict) -> dict:
        """``row`` renamed into sftdata's layout; columns the mapping does not name are kept.

        A row that has both a mapped column and a column already called by its target
        name is rejected (``column_conflict:<name>``) rather than losing one of them.
        """
        renamed = {column: ours for ours, column in self.columns.items()}
        out: dict = {}
        for key, value in row.items():
            name = renamed.get(key, key)
            if name in out:  # e.g. both `question` (mapped to instruction) and `instruction`
                raise RecordError(f"column_conflict:{name}")
            out[name] = value
        turns_key = TURNS.get(self.format, (None,))[0]
        if turns_key and isinstance(out.get(turns_key), list) and self.role_key:
            target_role, target_content = (("from", "value") if self.format == "sharegpt"
                                           else ("role", "content"))
            out[turns_key] = [self._turn(t, target_role, target_content) for t in out[turns_key]]
        return out

    @property
    def turn_level(self) -> bool:
        """Whether it renames anything inside the turns (not only top-level columns)."""
        return bool(self.roles or self.role_key or self.content_key)

    def for_format(self, fmt: str) -> ColumnMapping:
        """This mapping for a file read as ``fmt``: role values in that format's
        vocabulary, and its own turn keys where no others were named."""
        if fmt not in TURNS:
            return replace(self, format=fmt, roles={}, role_key=None, content_key=None)
        _, role, content = TURNS[fmt]
        words = TO_SHAREGPT if fmt == "sharegpt" else TO_OPENAI
        roles = {theirs: words.get(ours, ours) for theirs, ours in self.roles.items()}
        keys = (self.role_key or role, self.content_key or content) if self.turn_level else (None, None)
        return replace(self, format=fmt, roles=roles, role_key=keys[0], content_key=keys[1])

    def _turn(self, turn: Any, role: str, content: str) -> Any:
        if not isinstance(turn, dict):
            return turn  # left for the reader to reject with its reason
        out = {k: v for k, v in turn.items() if k not in (self.role_key, self.content_key)}
        if self.role_key in turn:
            out[role] = self.roles.get(turn[self.role_key], turn[self.role_key])
        if self.content_key in turn:
            out[content] = turn[self.content_key]
        return out


_LF_COLUMNS = {"alpaca": {"prompt": "instruction", "query": "input", "response": "output",
                          "system": "system", "history": "history"},
               "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools"}}
_LF_ROLES = {"user_tag": ("human", "user"), "assistant_tag": ("gpt", "assistant"),
             "observation_tag": ("observation", "tool"), "function_tag": ("function_call", None),
             "system_tag": ("system", "system")}


def mapping_from_entry(entry: dict) -> ColumnMapping:
    """The ``ColumnMapping`` of a LLaMA-Factory ``dataset_info.json`` entry (its defaults included).

    >>> m = mapping_from_entry({"file_name": "o.json", "columns": {"prompt": "question",
    ...                         "response": "answer", "system": "system_prompt"}})
    >>> m.apply({"question": "2+2?", "answer": "4", "system_prompt": "Be brief."})
    {'instruction': '2+2?', 'output': '4', 'system': 'Be brief.'}
    """
    if not isinstance(entry, dict):
        raise UserError("a dataset_info.json entry must be a JSON object")
    if entry.get("ranking"):
        raise UserError("this dataset_info.json entry is a preference (ranking) data set, not SFT data")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt", "openai"):
        raise UserError(f"unknown LLaMA-Factory formatting {formatting!r}")
    given = entry.get("columns")
    lf_format = "sharegpt" if formatting == "openai" else formatting
    defaults = {"alpaca": {"prompt": "instruction", "query": "input", "response": "output"},
                "sharegpt": {"messages": "conversations"}}[lf_format]
    # LLaMA-Factory: with "columns" present, every column it does not name is None.
    lf_columns = {k: v for k, v in (given if isinstance(given, dict) else defaults).items()
                  if k in _LF_COLUMNS[lf_format] and isinstance(v, str)}
    tags = {**SHAREGPT_TAGS, **(entry.get("tags") or {})}
    openai_style = tags["role_tag"] == "role" or formatting == "openai"
    target = "openai" if lf_format == "sharegpt" and openai_style else lf_format
    columns = {}
    for lf_name, column in lf_columns.items():
        ours = _LF_COLUMNS[lf_format][lf_name]
        if target == "openai" and ours == "conversations":
            ours = "messages"
        columns[ours] = column
    roles: dict[str, str] = {}
    role_key = content_key = None
    if lf_format == "sharegpt":
        role_key, content_key = tags["role_tag"], tags["content_tag"]
        for tag, (sharegpt_role, openai_role) in _LF_ROLES.items():
            value = tags.get(tag)
            ours = openai_role if target == "openai" else sharegpt_role
            if isinstance(value, str) and ours is not None:
                roles[value] = ours
    return ColumnMapping(target, columns, roles, role_key, content_key, entry.get("file_name"))


def entry_named(info: dict, name: str) -> dict:
    """The entry ``name`` of a parsed dataset_info.json; a one-line error listing the names."""
    if name not in info:
        shown = ", ".join(list(info)[:10]) or "none"
        raise UserError(f"no entry {name!r} in dataset_info.json (entries: {shown})")
    return info[name]


def _pairs(spec: str | None, option: str) -> dict[str, str]:
    """``a=b,c=d`` as ``{"a": "b", "c": "d"}``; a one-line error naming ``option`` otherwise."""
    pairs: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        theirs, sep, ours = (part.strip() for part in item.partition("="))
        if not sep or not theirs or not ours:
            raise UserError(f"{option}: {item.strip()!r} is not THEIRS=OURS (e.g. {option} question=instruction)")
        if theirs in pairs:
            raise UserError(f"{option}: {theirs!r} is mapped twice")
        pairs[theirs] = ours
    return pairs


def mapping_from_options(columns: str | None, roles: str | None, fmt: str | None = None) -> ColumnMapping | None:
    """The ``ColumnMapping`` of ``--columns`` / ``--roles`` (None when both are empty).

    >>> m = mapping_from_options("question=instruction,response=output", None)
    >>> m.format, m.apply({"question": "2+2?", "response": "4", "id": 7})
    ('alpaca', {'instruction': '2+2?', 'output': '4', 'id': 7})
    >>> m = mapping_from_options("dialog=conversations,speaker=from,text=value", "bot=gpt,person=user")
    >>> m.apply({"dialog": [{"speaker": "person", "text": "hi"}, {"speaker": "bot", "text": "hey"}]})
    {'conversations': [{'from': 'human', 'value': 'hi'}, {'from': 'gpt', 'value': 'hey'}]}
    """
    column_pairs, role_pairs = _pairs(columns, "--columns"), _pairs(roles, "--roles")
    if not column_pairs and not role_pairs:
        return None
    top, turn_keys, named = {}, {}, []
    for theirs, ours in column_pairs.items():
        if ours in ("from", "role", "value", "content"):
            turn_keys["role" if ours in ("from", "role") else "content"] = theirs
            named.append(ours)
        elif ours in TOP_FIELDS:
            if ours in top:
                raise UserError(f"--columns: two columns are mapped to {ours!r}")
            top[ours] = theirs
        else:
            raise UserError(f"--columns: {ours!r} is not a field sftdata reads; map to one of "
                            f"{', '.join(TOP_FIELDS)}, or to a turn key (from/value, role/content)")
    known = {"system", "user", "assistant", "tool", "human", "gpt", "observation", "function_call"}
    for theirs, ours in role_pairs.items():
        if ours not in known:
            raise UserError(f"--roles: {ours!r} is not a role; use one of {', '.join(sorted(known))}")
    guessed = {FIELD_FORMAT[o] for o in [*top, *named] if o in FIELD_FORMAT}
    target = fmt or (guessed.pop() if len(guessed) == 1 else None)
    mapping = ColumnMapping(target or "", top, role_pairs, turn_keys.get("role"), turn_keys.get("content"))
    return mapping.for_format(target) if target else mapping
