"""YAML scanning that allows the tabs libyaml (and so Docker Compose) allows.

PyYAML's pure-Python scanner refuses a tab anywhere between tokens ("found character '\\t'
that cannot start any token"); libyaml skips it as separating whitespace inside flow
collections and wherever a simple key may not start (after a value, after `key:`), and refuses
it only where it could be indentation. Files that Compose and editors accept must load here too.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml


class TabTolerantScanner:
    """scan_to_next_token as libyaml's: a tab separates tokens except where it would indent.
    A mixin placed before a loader whose reader and scanner are PyYAML's."""

    index: int
    flow_level: int
    allow_simple_key: bool
    peek: Callable[..., str]
    forward: Callable[..., None]
    scan_line_break: Callable[[], str]

    def scan_to_next_token(self) -> None:
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() == " " or (self.peek() == "\t" and (self.flow_level or not self.allow_simple_key)):
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if self.scan_line_break():
                if not self.flow_level:
                    self.allow_simple_key = True
            else:
                return


class TabTolerantSafeLoader(TabTolerantScanner, yaml.SafeLoader):
    """yaml.SafeLoader (pure Python) with libyaml's tab rule."""
