"""Flux ``postBuild`` variable substitution: ``${var}`` in rendered YAML, bash style.

Pure. Follows Flux's envsubst (github.com/fluxcd/pkg/envsubst, a fork of drone/envsubst)
so that manifests written for Flux render the same:

- only the braced form is recognised; ``$var`` stays as written;
- ``$$`` is an escape for ``$``, so ``$${var}`` renders the literal ``${var}``;
- ``${var:=default}``, ``${var:-default}`` and ``${var=default}`` use the default when
  the variable is unset *or empty* (Flux's behaviour, not bash's); defaults may nest;
- the bash string functions Flux documents: ``${#var}``, ``${var^}``, ``${var^^}``,
  ``${var,}``, ``${var,,}``, ``${var:offset[:length]}``, ``${var#pat}``, ``${var##pat}``,
  ``${var%pat}``, ``${var%%pat}``, ``${var/pat/repl}``, ``${var//pat/repl}``,
  ``${var/#pat/repl}``, ``${var/%pat/repl}``;
- strict mode (Flux's default since kustomize-controller 1.9): a variable without a
  default that is not set is an error naming it, never a silent empty string.

Two deliberate differences: defaults are evaluated only when used (Flux evaluates them
eagerly, so ``${set:=${unset}}`` fails there), and ``${var:?msg}``/``${var:+alt}``, which
Flux parses but silently treats as ``:-``, are refused as unsupported.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

VARIABLE_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
"""Names a variable may be given in ``substitute``/``substituteFrom`` (Flux's rule)."""
DISABLE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED = "disabled"

_DEFAULT_OPERATORS = frozenset({"=", ":=", ":-"})


class SubstitutionError(ValueError):
    """The text or the variables are wrong; retrying will not help."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
        """The variable at fault, when there is one."""


def is_disabled(manifest: Mapping[str, Any]) -> bool:
    """Whether an object opts out with ``kustomize.toolkit.fluxcd.io/substitute: disabled``.

    Flux honours the key as a label or as an annotation.
    """
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping):
        return False
    for field in ("labels", "annotations"):
        values = metadata.get(field)
        if isinstance(values, Mapping) and values.get(DISABLE_KEY) == DISABLED:
            return True
    return False


def merge_variables(
    from_references: Mapping[str, str], inline: Mapping[str, str]
) -> dict[str, str]:
    """Variables for one unit: ``substituteFrom`` data, overridden by ``substitute``.

    Newlines are removed from values as Flux does, since a value spliced into YAML must
    not start new lines. Raises SubstitutionError for a name Flux would refuse.
    """
    merged = {**from_references, **inline}
    validate_names(merged)
    return {name: value.replace("\n", "") for name, value in merged.items()}


def validate_names(variables: Mapping[str, str]) -> None:
    """Raise SubstitutionError unless every name matches ``^[_a-zA-Z][_a-zA-Z0-9]*$``."""
    for name in variables:
        if not VARIABLE_NAME.match(name):
            raise SubstitutionError(
                f"variable name {name!r} is invalid: it must match {VARIABLE_NAME.pattern}",
                variable=name,
            )


def substitute(text: str, variables: Mapping[str, str], *, strict: bool = True) -> str:
    """Expand every ``${...}`` in ``text``; raises SubstitutionError.

    With ``strict`` false an unset variable without a default becomes the empty string
    (Flux before 2.9, or with the StrictPostBuildSubstitutions gate off).
    """
    nodes = _Parser(text).parse()
    return _evaluate(nodes, variables, strict, text)


@dataclasses.dataclass
class _Expression:
    name: str
    operator: str
    arguments: list[list[_Node]]
    start: int


_Node = str | _Expression


class _Parser:
    """Recursive descent over the text; positions are kept for error messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        literal: list[str] = []
        text = self.text
        while self.position < len(text):
            pair = text[self.position : self.position + 2]
            if pair == "${":
                nodes.append("".join(literal))
                literal = []
                nodes.append(self._expression())
            elif pair == "$$":
                literal.append("$")
                self.position += 2
            else:
                literal.append(text[self.position])
                self.position += 1
        nodes.append("".join(literal))
        return [node for node in nodes if node != ""]

    def _peek(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.text[index] if index < len(self.text) else ""

    def _error(self, start: int, problem: str) -> SubstitutionError:
        end = self.text.find("}", start)
        end = len(self.text) if end < 0 or end - start > 60 else end + 1
        line = self.text.count("\n", 0, start) + 1
        snippet = self.text[start:end].split("\n", 1)[0]
        return SubstitutionError(f'bad substitution "{snippet}" at line {line}: {problem}')

    def _expression(self) -> _Expression:
        start = self.position
        self.position += 2  # "${"
        if self._peek() == "#":
            self.position += 1
            name = self._name(start)
            self._close(start)
            return _Expression(name, "#", [], start)
        name = self._name(start)
        following = self._peek()
        if following == "}":
            self.position += 1
            return _Expression(name, "", [], start)
        if following == ":" and self._peek(1) in ("=", "-", "?", "+"):
            operator = self.text[self.position : self.position + 2]
            if operator in (":?", ":+"):
                raise self._error(start, f'"{operator}" is not supported')
            self.position += 2
            return self._with_argument(name, operator, start)
        if following == "=":
            self.position += 1
            return self._with_argument(name, "=", start)
        if following == ":":
            self.position += 1
            arguments = [self._argument(start, ":}")]
            if self._peek() == ":":
                self.position += 1
                arguments.append(self._argument(start, "}"))
            self._close(start)
            return _Expression(name, ":", arguments, start)
        if following in (",", "^"):
            operator = self._run(following, 2)
            self._close(start)
            return _Expression(name, operator, [], start)
        if following in ("#", "%"):
            return self._with_argument(name, self._run(following, 2), start)
        if following == "/":
            self.position += 1
            operator = "/"
            if self._peek() in ("/", "#", "%"):
                operator += self._peek()
                self.position += 1
            pattern = self._argument(start, "/}", escapes=True)
            if self._peek() != "/":
                raise self._error(start, 'expected "/" after the pattern')
            self.position += 1
            if self._peek() == "}":
                self.position += 1
                return _Expression(name, operator, [pattern], start)
            replacement = self._argument(start, "}", escapes=True)
            self._close(start)
            return _Expression(name, operator, [pattern, replacement], start)
        raise self._error(start, "missing closing brace")

    def _with_argument(self, name: str, operator: str, start: int) -> _Expression:
        argument = self._argument(start, "}")
        self._close(start)
        return _Expression(name, operator, [argument], start)

    def _name(self, start: int) -> str:
        begin = self.position
        while (char := self._peek()) and (char.isalnum() or char == "_"):
            self.position += 1
        if self.position == begin:
            raise self._error(start, "unable to parse variable name")
        return self.text[begin : self.position]

    def _run(self, char: str, limit: int) -> str:
        begin = self.position
        while self.position - begin < limit and self._peek() in (",", "^", char):
            self.position += 1
        return self.text[begin : self.position]

    def _close(self, start: int) -> None:
        if self._peek() != "}":
            raise self._error(start, "missing closing brace")
        self.position += 1

    def _argument(self, start: int, stops: str, *, escapes: bool = False) -> list[_Node]:
        """Text up to (not including) one of ``stops``, with nested ``${...}`` parsed."""
        nodes: list[_Node] = []
        literal: list[str] = []
        while True:
            char = self._peek()
            if char == "":
                raise self._error(start, "missing closing brace")
            if char in stops:
                break
            pair = self.text[self.position : self.position + 2]
            if pair == "${":
                nodes.append("".join(literal))
                literal = []
                nodes.append(self._expression())
                continue
            if escapes and pair in ("\\/", "\\\\", "$$"):
                literal.append(pair[1])
                self.position += 2
                continue
            literal.append(char)
            self.position += 1
        nodes.append("".join(literal))
        return [node for node in nodes if node != ""]


def _evaluate(nodes: list[_Node], variables: Mapping[str, str], strict: bool, text: str) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        value = variables.get(node.name)
        if node.operator in _DEFAULT_OPERATORS:
            if value:
                out.append(value)
            else:
                out.append(_evaluate(node.arguments[0], variables, strict, text))
            continue
        if value is None:
            if strict:
                line = text.count("\n", 0, node.start) + 1
                raise SubstitutionError(
                    f'variable "{node.name}" is not set (line {line}): set it in postBuild, '
                    f"give it a default with ${{{node.name}:=value}}, or write "
                    f"$${{{node.name}}} to keep it literal",
                    variable=node.name,
                )
            value = ""
        arguments = [_evaluate(argument, variables, strict, text) for argument in node.arguments]
        out.append(_apply(node.operator, value, arguments))
    return "".join(out)


def _apply(operator: str, value: str, arguments: list[str]) -> str:
    function = _FUNCTIONS.get(operator)
    # Mixed casing runs such as ",^" mean nothing; Flux returns the value unchanged.
    return function(value, arguments) if function is not None else value


def _substring(value: str, arguments: list[str]) -> str:
    try:
        offset = int(arguments[0].strip())
    except ValueError:
        return value  # bash returns the value when the offset is not a number
    if offset < 0:
        offset = max(len(value) + offset, 0)
    if len(arguments) == 1:
        return value[offset:]
    try:
        length = int(arguments[1].strip())
    except ValueError:
        return value
    if length < 0:
        end = len(value) + length
        return value[offset:end] if end >= offset else ""
    return value[offset : offset + length]


def _glob(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` syntax as a regex: ``*`` and ``?`` never match ``/``."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                negate = body.startswith("^")
                body = body[1:] if negate else body
                out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(re.escape(pattern))


def _trim_prefix(value: str, pattern: str, *, shortest: bool) -> str:
    matcher = _glob(pattern)
    lengths = range(1, len(value) + 1) if shortest else range(len(value), 0, -1)
    for length in lengths:
        if matcher.fullmatch(value[:length]):
            return value[length:]
    return value


def _trim_suffix(value: str, pattern: str, *, shortest: bool) -> str:
    matcher = _glob(pattern)
    starts = range(len(value) - 1, -1, -1) if shortest else range(len(value))
    for start in starts:
        if matcher.fullmatch(value[start:]):
            return value[:start]
    return value


_Function = Callable[[str, list[str]], str]

_FUNCTIONS: dict[str, _Function] = {
    "": lambda v, _: v,
    "#": lambda v, a: _trim_prefix(v, a[0], shortest=True) if a else str(len(v.encode())),
    "##": lambda v, a: _trim_prefix(v, a[0], shortest=False),
    "%": lambda v, a: _trim_suffix(v, a[0], shortest=True),
    "%%": lambda v, a: _trim_suffix(v, a[0], shortest=False),
    "^": lambda v, _: v[:1].upper() + v[1:],
    "^^": lambda v, _: v.upper(),
    ",": lambda v, _: v[:1].lower() + v[1:],
    ",,": lambda v, _: v.lower(),
    ":": _substring,
    "/": lambda v, a: v.replace(a[0], a[1] if len(a) > 1 else "", 1),
    "//": lambda v, a: v.replace(a[0], a[1] if len(a) > 1 else ""),
    "/#": lambda v, a: a[1] + v[len(a[0]) :] if len(a) == 2 and v.startswith(a[0]) else v,
    "/%": lambda v, a: v[: len(v) - len(a[0])] + a[1] if len(a) == 2 and v.endswith(a[0]) else v,
}
"""Bash string functions by operator, as Flux's envsubst maps them."""
