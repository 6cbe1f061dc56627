"""The API's JSON parser: bodies the database could not store are a 400 keyed by the field.

Python's ``json`` reads ``NaN``, ``Infinity`` and out-of-range numbers (``1e400`` becomes
``inf``), strings holding NUL characters, and nesting as deep as its recursion limit allows. None
of that can be stored, so each top-level field of a body is checked with
:func:`hephaestus_django.core.values.storable_problem` (the one check of what the database can
store) before any serializer sees it; a body nested too deep for the parser itself is answered the
same way, keyed by the field that holds the deep value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from hephaestus_django.core.values import MAX_DEPTH, storable_problem

#: JSON strings (skipped whole, escapes included) and the brackets that nest values.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_COLON = re.compile(r"\s*:")


def deep_field(text: str, limit: int = MAX_DEPTH) -> str | None:
    """The top-level key of the JSON object ``text`` under which nesting first goes deeper than
    ``limit`` (``None`` when ``text`` is not an object, or nothing is that deep). Iterative: it
    reads what the parser could not."""
    opened: list[str] = []
    key: str | None = None
    for token in _TOKENS.finditer(text):
        value = token.group()
        if value in ("[", "{"):
            opened.append(value)
            if len(opened) > limit + 1:
                return key if opened[0] == "{" else None
        elif value in ("]", "}"):
            if opened:
                opened.pop()
        elif opened == ["{"] and _COLON.match(text, token.end()):
            try:
                key = json.loads(value)
            except ValueError:
                key = value[1:-1]
    return None


def check_body(data: Any) -> None:
    """A 400 keyed by the first top-level field of ``data`` that the database could not store."""
    if isinstance(data, dict):
        for name, value in data.items():
            problem = storable_problem(name, "field name") or storable_problem(value, str(name))
            if problem is not None:
                raise ValidationError({str(name): [f"{problem}; nothing was written"]})
        return
    problem = storable_problem(data, "body")
    if problem is not None:
        raise ParseError(f"{problem}; nothing was written")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that what the database cannot store (``NaN``, ``Infinity``,
    ``1e400``, NUL characters, absurd nesting) is a 400 keyed by the field holding it."""

    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": exc}) from None
        try:
            # NaN and Infinity are read as floats here, to be refused with the name of their field
            data = json.loads(text)
        except RecursionError:
            field = deep_field(text)
            problem = _("is nested more than %(limit)d levels deep") % {"limit": MAX_DEPTH}
            if field is None:
                raise ParseError(_("JSON parse error - the body %(problem)s.") % {"problem": problem}) from None
            raise ValidationError({field: [f"{field} {problem}; nothing was written"]}) from None
        except ValueError as exc:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": exc}) from None
        check_body(data)
        return data
