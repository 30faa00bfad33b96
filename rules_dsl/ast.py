"""The immutable abstract syntax tree of a .jrule file.

Every node carries a :class:`Span`.  Spans are excluded from equality, so two
trees compare equal when they mean the same program, whatever its layout: this
is what the formatter's round-trip guarantee is stated against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "ActionCall",
    "AdvanceTo",
    "AnchorEntering",
    "Approval",
    "ApprovalBranch",
    "BinaryOp",
    "BinaryOperator",
    "Block",
    "BoolLit",
    "Comment",
    "Contract",
    "DateLit",
    "DateTimeLit",
    "Deadline",
    "DecimalLit",
    "DecisionAt",
    "DoStmt",
    "EnumDecl",
    "EnumValue",
    "EnumVariant",
    "EventAt",
    "EventDecl",
    "ExpectAction",
    "ExpectExplanation",
    "ExpectNoAction",
    "ExpectRefused",
    "ExpectState",
    "ExpectTrue",
    "Expr",
    "FieldAccess",
    "FieldDecl",
    "FuncCall",
    "GotoStmt",
    "Ident",
    "IfBranch",
    "IfStmt",
    "ImportDecl",
    "IndexAccess",
    "IntLit",
    "Item",
    "LegalDate",
    "ListLit",
    "Member",
    "ModuleDecl",
    "MoneyLit",
    "NameRef",
    "NamedArg",
    "Period",
    "PeriodStmt",
    "PropAfterNever",
    "PropAlways",
    "PropNeverAction",
    "PropTerminates",
    "PropUnapproved",
    "PropWithin",
    "Property",
    "PropertyForm",
    "RecordDecl",
    "RoleDecl",
    "Scenario",
    "ScenarioStep",
    "SetStmt",
    "SourceFile",
    "Span",
    "StartAt",
    "StateDecl",
    "Stmt",
    "StringLit",
    "TermDecl",
    "TermsGiven",
    "TestMember",
    "TestSuite",
    "TestValue",
    "Timing",
    "TimingAfter",
    "TimingBefore",
    "TimingBy",
    "TimingEvery",
    "Transition",
    "TypeRef",
    "UnaryOp",
    "ValueField",
    "ValueList",
    "ValueRecord",
    "VarDecl",
    "When",
]


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of one source file: 1-based lines and columns, end exclusive.

    ``start``/``end`` are character offsets into the file's text.
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def compact(self) -> str:
        """``file:line:col-end_line:end_col``, the form used in the IR."""
        return f"{self.file}:{self.line}:{self.column}-{self.end_line}:{self.end_column}"

    def cover(self, other: Span) -> Span:
        """The smallest span containing both (same file assumed)."""
        first, last = (self, other) if self.start <= other.start else (other, self)
        return Span(
            self.file,
            first.line,
            first.column,
            last.end_line,
            last.end_column,
            first.start,
            max(self.end, other.end),
        )


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written, with its position."""

    name: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    span: Span = dataclasses.field(compare=False, repr=False)


# --- expressions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameRef:
    name: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FieldAccess:
    obj: Expr
    field: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IndexAccess:
    obj: Expr
    index: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FuncCall:
    func: Ident
    args: tuple[Expr, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


BinaryOperator: TypeAlias = Literal[
    "+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or"
]


@dataclass(frozen=True, slots=True)
class BinaryOp:
    op: BinaryOperator
    left: Expr
    right: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class UnaryOp:
    op: Literal["-", "not"]
    operand: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IntLit:
    value: int
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DecimalLit:
    """An exact decimal, kept as its canonical text (``"0.000175"``)."""

    text: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MoneyLit:
    """A yuan amount, kept as canonical text with two decimals (``"12.50"``)."""

    text: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DateLit:
    iso: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DateTimeLit:
    iso: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StringLit:
    value: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LegalDate:
    """``(15 days after today)``: a date computed under the legal-period rules."""

    period: Period
    direction: Literal["after", "before"]
    anchor: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Expr, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


Expr: TypeAlias = (
    NameRef
    | FieldAccess
    | IndexAccess
    | FuncCall
    | BinaryOp
    | UnaryOp
    | IntLit
    | DecimalLit
    | MoneyLit
    | DateLit
    | DateTimeLit
    | StringLit
    | BoolLit
    | ListLit
    | LegalDate
)


# --- types and declarations --------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeRef:
    """``Money``, ``PropertyKind`` or ``List[Instalment]``."""

    name: Ident
    args: tuple[TypeRef, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FieldDecl:
    name: Ident
    type: TypeRef
    title: str | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ImportDecl:
    module: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RoleDecl:
    name: Ident
    title: str | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EnumVariant:
    name: Ident
    title: str | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EnumDecl:
    name: Ident
    title: str | None
    variants: tuple[EnumVariant, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RecordDecl:
    name: Ident
    title: str | None
    fields: tuple[FieldDecl, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TermDecl:
    name: Ident
    type: TypeRef
    title: str | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class VarDecl:
    name: Ident
    type: TypeRef
    init: Expr
    title: str | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StateDecl:
    name: Ident
    title: str | None
    initial: bool
    terminal: bool
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EventDecl:
    name: Ident
    title: str | None
    by: tuple[Ident, ...]
    fields: tuple[FieldDecl, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


# --- statements --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    stmts: tuple[Stmt, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SetStmt:
    target: Ident
    value: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NamedArg:
    name: Ident
    value: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ActionCall:
    action: Ident
    args: tuple[NamedArg, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


PeriodUnitName: TypeAlias = Literal["days", "working_days", "months", "years"]


@dataclass(frozen=True, slots=True)
class Period:
    """``15 days``, ``3 working days``, ``grace_days days``, ``6 months``."""

    amount: Expr
    unit: PeriodUnitName
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ApprovalBranch:
    outcome: Literal["approved", "rejected", "timeout"]
    body: Block
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Approval:
    """``approved by ROLE within PERIOD [on approved|rejected|timeout {...}]``."""

    role: Ident
    within: Period
    branches: tuple[ApprovalBranch, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DoStmt:
    call: ActionCall
    approval: Approval | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GotoStmt:
    state: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IfBranch:
    condition: Expr
    body: Block
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IfStmt:
    branches: tuple[IfBranch, ...]
    otherwise: Block | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PeriodStmt:
    """``suspend D`` (中止), ``resume D`` or ``restart D`` (中断)."""

    op: Literal["suspend", "resume", "restart"]
    deadline: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


Stmt: TypeAlias = SetStmt | DoStmt | GotoStmt | IfStmt | PeriodStmt


# --- rules -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnchorEntering:
    """The date the deadline's state was entered."""

    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TimingBy:
    """Due at the end of a date: ``by due_date``."""

    date: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TimingAfter:
    """``15 days after served_on`` / ``30 days after entering``."""

    period: Period
    anchor: Expr | AnchorEntering
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TimingBefore:
    """``3 working days before due_date`` (reminders)."""

    period: Period
    anchor: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TimingEvery:
    """``every 6 months after entering for 5 years``."""

    period: Period
    anchor: Expr | AnchorEntering
    limit: Period | None
    span: Span = dataclasses.field(compare=False, repr=False)


Timing: TypeAlias = TimingBy | TimingAfter | TimingBefore | TimingEvery


@dataclass(frozen=True, slots=True)
class Transition:
    event: Ident
    states: tuple[Ident, ...]
    guard: Expr | None
    priority: IntLit | None
    cite: StringLit | None
    body: Block
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Deadline:
    name: Ident
    title: str | None
    states: tuple[Ident, ...]
    timing: Timing
    priority: IntLit | None
    cite: StringLit | None
    body: Block
    span: Span = dataclasses.field(compare=False, repr=False)


# --- scenario tests and properties (checked, never part of the IR) ---------------


@dataclass(frozen=True, slots=True)
class ValueField:
    """``name: value`` in terms, payloads, records and expected action arguments."""

    name: Ident
    value: TestValue
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EnumValue:
    """``PropertyKind.bank_deposit`` written as a test value."""

    enum: Ident
    variant: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ValueList:
    items: tuple[TestValue, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ValueRecord:
    fields: tuple[ValueField, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


#: A constant written in a scenario: a literal, a role name, an enum value, a list
#: or a record.  (No arithmetic: a scenario states facts.)
TestValue: TypeAlias = (
    IntLit | DecimalLit | MoneyLit | DateLit | DateTimeLit | StringLit | BoolLit | NameRef
    | EnumValue | ValueList | ValueRecord
)


@dataclass(frozen=True, slots=True)
class When:
    """An instant in a scenario: a date (noon, court time) or a date and time."""

    iso: str
    is_date: bool
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StartAt:
    when: When
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TermsGiven:
    fields: tuple[ValueField, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EventAt:
    when: When
    event: Ident
    role: Ident
    payload: tuple[ValueField, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DecisionAt:
    """``at WHEN approve [ACTION] by ROLE``: decide the latest pending approval."""

    when: When
    approve: bool
    action: Ident | None
    role: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AdvanceTo:
    when: When
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExpectState:
    state: Ident
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExpectAction:
    """The last timeline line triggered ``action`` (with these arguments, if given)."""

    action: Ident
    args: tuple[ValueField, ...] | None
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExpectNoAction:
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExpectExplanation:
    text: str
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExpectRefused:
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExpectTrue:
    condition: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


ScenarioStep: TypeAlias = (
    StartAt | TermsGiven | EventAt | DecisionAt | AdvanceTo | ExpectState | ExpectAction
    | ExpectNoAction | ExpectExplanation | ExpectRefused | ExpectTrue
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    steps: tuple[ScenarioStep, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PropAlways:
    """``always COND`` (``never COND`` is kept as written: ``negated``)."""

    condition: Expr
    negated: bool
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PropNeverAction:
    """``[after COND] never action A, B``."""

    after: Expr | None
    actions: tuple[Ident, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PropAfterNever:
    """``after COND never BAD``: once COND has held, BAD never holds again."""

    after: Expr
    condition: Expr
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PropWithin:
    """``after COND eventually GOAL within PERIOD``."""

    after: Expr
    goal: Expr
    within: Period
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PropTerminates:
    """``eventually terminal``: left alone, every instance ends in a terminal state."""

    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PropUnapproved:
    """``never unapproved [A, B]``: these actions (default: every action the
    catalogue says needs approval) take effect only on an officer's approval."""

    actions: tuple[Ident, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


PropertyForm: TypeAlias = (
    PropAlways | PropNeverAction | PropAfterNever | PropWithin | PropTerminates | PropUnapproved
)


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    form: PropertyForm
    span: Span = dataclasses.field(compare=False, repr=False)


TestMember: TypeAlias = Scenario | Property


Member: TypeAlias = (
    ImportDecl
    | RoleDecl
    | EnumDecl
    | RecordDecl
    | TermDecl
    | VarDecl
    | StateDecl
    | EventDecl
    | Transition
    | Deadline
)


@dataclass(frozen=True, slots=True)
class Contract:
    name: Ident
    title: str
    version: str
    members: tuple[Member, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ModuleDecl:
    """A reusable set of members, spliced into a contract by ``import``."""

    name: Ident
    title: str | None
    members: tuple[Member, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TestSuite:
    """``tests for CONTRACT { ... }``: scenarios and properties kept apart from the
    rules (usually in ``NAME.test.jrule`` beside ``NAME.jrule``)."""

    contract: Ident
    members: tuple[TestMember, ...]
    span: Span = dataclasses.field(compare=False, repr=False)


Item: TypeAlias = Contract | ModuleDecl | TestSuite


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A parsed file: its items, and its comments (kept for the formatter)."""

    path: str
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = dataclasses.field(compare=False)
    span: Span = dataclasses.field(compare=False, repr=False)
