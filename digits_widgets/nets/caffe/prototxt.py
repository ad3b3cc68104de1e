"""Reading Caffe prototxt: the NetParameter with errors that name the line, the line of each layer block, and
Caffe's NetStateRule logic (include / exclude by phase and stage, as ``Net::FilterNet`` applies it)."""
from __future__ import annotations

import re

from google.protobuf import text_format

from ...errors import NetworkError
from .schema import NetParameter

__all__ = ['parse_net', 'layer_lines', 'included']


def parse_net(text: str, name: str = 'network'):
    """The NetParameter in ``text``; a syntax error becomes a NetworkError naming the line."""
    try:
        return text_format.Parse(text, NetParameter())
    except text_format.ParseError as exc:
        line = exc.GetLine()
        where = f' at line {line}' if line else ''
        raise NetworkError(f"The Caffe network '{name}' does not parse{where}: {exc}") from None


def layer_lines(text: str) -> list[int]:
    """The line (1-based) of each top-level ``layer`` block, in order (strings and # comments skipped)."""
    lines, depth, line, i, n = [], 0, 1, 0, len(text)
    word = re.compile(r'layer\s*:?\s*\{')
    while i < n:
        c = text[i]
        if c == '\n':
            line += 1
        elif c == '#':
            while i < n and text[i] != '\n':
                i += 1
            continue
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            line += text.count('\n', i, j)
            i = j + 1
            continue
        elif c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
        elif depth == 0 and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            m = word.match(text, i)
            if m:
                lines.append(line)
                line += text.count('\n', i, m.end() - 1)
                i = m.end() - 1
                continue
        i += 1
    return lines


def _rule_matches(rule, phase: int, stages: set[str]) -> bool:
    if rule.HasField('phase') and rule.phase != phase:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def included(layer, phase: int, stages: set[str]) -> bool:
    """Caffe's NetStateRule logic: with include rules, one must match; else no exclude rule may match."""
    if layer.HasField('phase') and layer.phase != phase:
        return False
    if layer.include:
        return any(_rule_matches(r, phase, stages) for r in layer.include)
    return not any(_rule_matches(r, phase, stages) for r in layer.exclude)
