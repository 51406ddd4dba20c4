"""Rule errors that point at the spot: line, column and a caret under it."""

from __future__ import annotations

from hagate.errors import HagateError


class RuleError(HagateError):
    """A parse or type error in an expression, with its position in the text."""

    exit_code = 2

    def __init__(self, message: str, text: str, start: int, end: int | None = None) -> None:
        self.message = message
        self.text = text
        self.start = max(0, min(start, len(text)))
        self.end = max(self.start + 1, end if end is not None else self.start + 1)
        line_start = text.rfind("\n", 0, self.start) + 1
        self.line = text.count("\n", 0, self.start) + 1
        self.column = self.start - line_start + 1
        super().__init__(self.render())

    def render(self, label: str = "") -> str:
        text = self.text
        line_start = text.rfind("\n", 0, self.start) + 1
        line_end = text.find("\n", self.start)
        if line_end < 0:
            line_end = len(text)
        line = text[line_start:line_end]
        width = max(1, min(self.end, line_end) - self.start)
        prefix = f"{label}: " if label else ""
        return (
            f"{prefix}line {self.line}, column {self.column}: {self.message}\n"
            f"    {line}\n"
            f"    {' ' * (self.column - 1)}{'^' * width}"
        )
