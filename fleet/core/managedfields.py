"""Who changed a field: the field managers that own it, read from ``managedFields``.

The API server records, per field manager, the set of fields it last wrote
(``fieldsV1``: ``f:<name>`` for a map key, ``k:{...}`` for an element of a keyed list,
``v:<json>`` for a set element, ``i:<n>`` for a list position, ``.`` for the node itself).
The manager of a drifted field is the one whose set holds it now: after ``kubectl scale``
that is ``kubectl`` for ``/spec/replicas``, whoever wrote the object last (often the
controller manager updating something else). Pure functions over plain objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _tokens(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


def _element_key(node: Mapping[str, Any], element: Any, index: int) -> str | None:
    """The key of ``fieldsV1`` that stands for list element ``element`` at ``index``."""
    for key in node:
        if key.startswith("k:") and isinstance(element, Mapping):
            try:
                wanted = json.loads(key[2:])
            except ValueError:
                continue
            if isinstance(wanted, Mapping) and all(element.get(k) == v for k, v in wanted.items()):
                return key
        elif key.startswith("v:"):
            try:
                if json.loads(key[2:]) == element:
                    return key
            except ValueError:
                continue
        elif key == f"i:{index}":
            return key
    return None


def owns(fields: Mapping[str, Any], live: Any, pointer: str) -> bool:
    """Whether a manager's ``fieldsV1`` holds the field at ``pointer`` of ``live``.

    A manager that owns a field atomically (its set ends above the pointer, e.g. a
    whole list) owns everything inside it.
    """
    node: Any = fields
    value = live
    for token in _tokens(pointer):
        if not isinstance(node, Mapping):
            return False
        if not node:  # a leaf: the manager owns this value as a whole
            return True
        if isinstance(value, list):
            if not token.isdigit():
                return False
            index = int(token)
            element = value[index] if index < len(value) else None
            key = _element_key(node, element, index)
            if key is None:
                return False
            node, value = node[key], element
        else:
            key = f"f:{token}"
            if key not in node:
                return False
            node = node[key]
            value = value.get(token) if isinstance(value, Mapping) else None
    return isinstance(node, Mapping)


def managers_of(
    live: Mapping[str, Any], pointers: Iterable[str], *, exclude: Sequence[str] = ()
) -> list[str]:
    """The field managers (other than ``exclude``) that own any of ``pointers``, in the
    order of managedFields, each named once."""
    found: list[str] = []
    entries = (live.get("metadata") or {}).get("managedFields") or []
    wanted = list(pointers)
    for entry in entries:
        manager = str(entry.get("manager") or "")
        if not manager or manager in exclude or manager in found:
            continue
        fields = entry.get("fieldsV1")
        if not isinstance(fields, Mapping):
            continue
        if any(owns(fields, live, pointer) for pointer in wanted):
            found.append(manager)
    return found


def last_writer(live: Mapping[str, Any], *, exclude: Sequence[str] = ()) -> str | None:
    """The manager (other than ``exclude``) that wrote the object's spec or metadata last:
    the best guess when no manager owns the changed fields (a field was removed)."""
    entries = [
        m
        for m in (live.get("metadata") or {}).get("managedFields") or []
        if m.get("manager") and m.get("manager") not in exclude and m.get("subresource") != "status"
    ]
    if not entries:
        return None
    return str(max(entries, key=lambda m: m.get("time") or "")["manager"])


def who_changed(
    live: Mapping[str, Any], pointers: Iterable[str], *, exclude: Sequence[str] = ()
) -> str | None:
    """Who changed the fields at ``pointers``: their managers (``kubectl``), else the last
    writer of the object; None when managedFields name nobody but ``exclude``."""
    owners = managers_of(live, pointers, exclude=exclude)
    if owners:
        return ", ".join(owners)
    return last_writer(live, exclude=exclude)
