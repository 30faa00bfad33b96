"""The stable diagnostic codes of the compiler, with what each one means.

Codes never change meaning once released; retired codes are not reused.
``docs/language.md`` shows this table with one example per code, taken from
``tests/fixtures/check/bad/`` (a test keeps the three in step).  Run
``python -m rules_dsl.error_codes`` to print the Markdown table.
"""

from __future__ import annotations

__all__ = ["ERROR_CODES", "markdown_table"]

#: code -> (title, explanation)
ERROR_CODES: dict[str, tuple[str, str]] = {
    "E001": ("syntax error", "The text does not follow the grammar: a missing brace, a "
             "misspelt keyword, `=` where `==` was meant."),
    "E002": ("invalid literal", "A date that does not exist (2025-02-30), money with more "
             "than two decimal places, a number too large."),
    "E003": ("nested too deeply", "An expression or block is nested more than 64 levels."),
    "E004": ("unreadable file", "The file cannot be read, is not UTF-8, contains NUL bytes "
             "or is larger than 16 MiB."),
    "E101": ("unknown name", "A name in an expression or `set` is not a term, variable, "
             "role or built-in value."),
    "E102": ("duplicate definition", "Two declarations share a name (all declarations of a "
             "contract share one namespace), or a built-in name is redeclared."),
    "E103": ("bad import", "An imported module does not exist, is imported twice, has "
             "errors, or modules import each other in a cycle."),
    "E104": ("unknown type", "A type name is not Money, Decimal, Int, Bool, Text, Date, "
             "DateTime, Role, List[T] or a declared enum or record."),
    "E105": ("unknown action", "`do` names an action that is not in the catalogue."),
    "E106": ("unknown state", "A `goto` or `in` names a state that is not declared."),
    "E107": ("unknown event", "`on` names an event that is not declared."),
    "E108": ("unknown role", "`by` or `approved by` names a role that is not declared."),
    "E109": ("unknown deadline", "`suspend`, `resume` or `restart` names no deadline."),
    "E201": ("type mismatch", "An operator or function gets values of the wrong types "
             "(Money + Date), or a value has the wrong type for its place."),
    "E202": ("bad comparison", "Two values of different types are compared (Money with "
             "Int), or `<` is used on values without an order."),
    "E203": ("condition not true/false", "A `when`, `if`, `and`, `or` or `not` gets a value "
             "that is not Bool."),
    "E205": ("wrong action argument", "An action argument has the wrong type."),
    "E206": ("missing or unknown argument", "An action call lacks a required argument, "
             "names one the action does not have, or gives one twice."),
    "E207": ("unrounded money", "Money times a decimal (or divided) must be rounded to fen "
             "with round(x, half_up|half_even|down|up) before it is used."),
    "E208": ("bad period", "A period's length is not a whole number, or a repeating "
             "deadline counts working days."),
    "E209": ("term assigned", "`set` targets a term; terms are fixed when the instance is "
             "created."),
    "E210": ("bad function call", "An unknown function, or the wrong number of arguments."),
    "E211": ("bad field", "A field that the record, event or enum does not have, or an "
             "event payload used outside its own transitions and deadline timings."),
    "E212": ("bad rounding mode", "round() needs half_up, half_even, down or up."),
    "E301": ("initial state", "No state, none marked `initial`, several marked, or one both "
             "initial and terminal."),
    "E302": ("unreachable state", "No path of transitions and deadlines leads from the "
             "initial state to this state."),
    "E303": ("dead end", "A state that is not terminal has no transition or deadline that "
             "leaves it."),
    "E304": ("rule in a terminal state", "A transition or deadline names a terminal state."),
    "E305": ("deadline never armed", "None of the deadline's states can be reached, it "
             "counts from an event nothing accepts, or its repeat window is shorter than "
             "one period."),
    "E306": ("event nobody may submit", "An event has no `by` roles."),
    "E307": ("non-deterministic transitions", "Two transitions on the same event can fire "
             "in the same state and their conditions can both hold; make them exclusive or "
             "give them different priorities."),
    "E308": ("conflicting deadlines", "Two deadlines in the same state fall due at the same "
             "moment and both change the state or the same variable, without priorities."),
    "E309": ("code after goto", "A statement follows a `goto` on the same path."),
    "E310": ("approval missing", "The action must be confirmed by an officer: add "
             "`approved by ROLE within PERIOD`."),
    "E311": ("no contract", "The file holds no contract or module (a warning)."),
    "E501": ("bad scenario", "A scenario gives no `terms` or gives them twice, or `start at` "
             "comes after the timeline's first line."),
    "E502": ("bad test value", "A term, payload field or expected argument in a scenario has "
             "the wrong type, lacks record fields, or a date and time has no offset."),
    "E503": ("unknown contract", "`tests for NAME` names no contract of the file or of the "
             "rules file beside it."),
    "E504": ("role may not submit", "A scenario submits an event by a role its `by` list "
             "does not allow."),
    "E505": ("bad property", "`never unapproved` names an action that needs no approval, "
             "`eventually terminal` in a contract without terminal states, or a `within` "
             "period that is not a number or a term."),
    "W401": ("event never accepted", "No transition accepts the event, so it is always "
             "refused."),
    "W402": ("unused", "A term or variable is never read or set."),
    "W403": ("needless approval", "The action does not need approval; the gate only "
             "delays it."),
}


def markdown_table() -> str:
    lines = ["| code | meaning | explanation |", "| --- | --- | --- |"]
    for code, (title, text) in ERROR_CODES.items():
        lines.append(f"| {code} | {title} | {text} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
