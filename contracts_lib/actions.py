"""The action catalogue: every procedure a rule may trigger with ``do``.

Each action has a canonical English name, a Chinese alias, typed parameters,
whether it needs a named officer's confirmation before it takes effect
(item 11 of the Opinions: freeze, deduct, pay out and sanctions are
closed-loop), which system carries it out, and what that system must return.
The compiler checks every ``do`` against this table; the engine and the
receiving systems rely on it.  Parameter types are written in the language's
own type syntax (``Money``, ``Role``, ``PropertyKind``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ACTIONS",
    "BUILTIN_ENUMS",
    "ActionParam",
    "ActionSpec",
    "EnumSpec",
    "find_action",
]


@dataclass(frozen=True, slots=True)
class ActionParam:
    name: str
    type: str
    title: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    alias: str
    title_en: str
    title_zh: str
    params: tuple[ActionParam, ...]
    needs_approval: bool
    receiver: str
    returns: tuple[ActionParam, ...]

    def param(self, name: str) -> ActionParam | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True, slots=True)
class EnumSpec:
    """An enumeration every contract can use without declaring it."""

    name: str
    title: str
    variants: tuple[tuple[str, str], ...]


def _p(name: str, type_: str, title: str, required: bool = True) -> ActionParam:
    return ActionParam(name, type_, title, required)


_CASE_NUMBER = (_p("case_number", "Text", "case number assigned by the court"),)
_ACK = (_p("receipt_id", "Text", "the receiving system's id for the request"),)

BUILTIN_ENUMS: Mapping[str, EnumSpec] = MappingProxyType(
    {
        "PropertyKind": EnumSpec(
            "PropertyKind",
            "财产类型 Kind of property",
            (
                ("bank_deposit", "银行存款 bank deposit (freeze at most 6 months)"),
                ("movable", "动产 movable property (seal up at most 1 year)"),
                ("real_estate", "不动产 real estate (at most 2 years)"),
                ("other_right", "其他财产权 other property rights (at most 2 years)"),
            ),
        ),
        "Procedure": EnumSpec(
            "Procedure",
            "程序 Procedure",
            (
                ("ordinary", "普通程序 ordinary procedure"),
                ("summary", "简易程序 summary procedure"),
                ("small_claims", "小额诉讼 small claims"),
            ),
        ),
    }
)

_SPECS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "file_trial_case", "提起诉讼", "File a trial (litigation) case", "自动提起诉讼",
        (
            _p("plaintiff", "Role", "who sues"),
            _p("defendant", "Role", "who is sued"),
            _p("claim_amount", "Money", "amount claimed"),
            _p("cause", "Text", "cause of action"),
        ),
        False, "case management system", _CASE_NUMBER,
    ),
    ActionSpec(
        "file_enforcement_case", "申请执行", "File an enforcement case", "自动申请执行立案",
        (
            _p("applicant", "Role", "applicant for enforcement"),
            _p("respondent", "Role", "person subject to enforcement"),
            _p("amount", "Money", "amount to enforce"),
            _p("basis", "Text", "the enforceable document"),
        ),
        False, "case management system", _CASE_NUMBER,
    ),
    ActionSpec(
        "resume_enforcement", "恢复执行", "Resume enforcement", "恢复执行",
        (
            _p("respondent", "Role", "person subject to enforcement"),
            _p("amount", "Money", "amount still owed"),
            _p("reason", "Text", "why enforcement resumes"),
        ),
        False, "enforcement system", _ACK,
    ),
    ActionSpec(
        "docket_filing", "立案", "Docket a filing", "登记立案",
        (
            _p("case_type", "Text", "case type from the classification"),
            _p("procedure", "Procedure", "procedure the case follows"),
        ),
        False, "case management system", _CASE_NUMBER,
    ),
    ActionSpec(
        "return_filing", "退回起诉", "Return (refuse) a filing", "不予受理/退回",
        (_p("reason", "Text", "why the filing is returned"),),
        False, "case management system", _ACK,
    ),
    ActionSpec(
        "request_supplement", "补正通知", "Tell the filer once what to supply", "一次性告知补正",
        (
            _p("party", "Role", "the filer"),
            _p("materials", "Text", "what is missing"),
            _p("deadline", "Date", "supply by this date"),
        ),
        False, "service system", _ACK,
    ),
    ActionSpec(
        "notify", "通知", "Notify a party", "通知当事人",
        (_p("party", "Role", "who is notified"), _p("message", "Text", "what they are told")),
        False, "service system", _ACK,
    ),
    ActionSpec(
        "remind", "履行提醒", "Remind an obligor to perform", "履行提醒",
        (
            _p("party", "Role", "the obligor"),
            _p("due", "Date", "due date"),
            _p("amount", "Money", "amount due"),
        ),
        False, "service system", _ACK,
    ),
    ActionSpec(
        "query_property", "查询财产", "Query property (network inquiry and control)", "网络查控",
        (_p("debtor", "Role", "whose property is queried"),),
        False, "inquiry-and-control system",
        (_p("report_id", "Text", "id of the property report"),),
    ),
    ActionSpec(
        "freeze", "冻结", "Freeze or seal up property", "冻结/查封",
        (
            _p("debtor", "Role", "owner of the property"),
            _p("kind", "PropertyKind", "kind of property"),
            _p("amount", "Money", "up to this sum"),
        ),
        True, "inquiry-and-control system",
        (_p("freeze_id", "Text", "id of the freeze"), _p("expires_on", "Date", "expiry")),
    ),
    ActionSpec(
        "renew_freeze", "续行冻结", "Renew a freeze before it expires", "续行冻结",
        (
            _p("debtor", "Role", "owner of the property"),
            _p("kind", "PropertyKind", "kind of property"),
            _p("amount", "Money", "sum kept frozen"),
        ),
        True, "inquiry-and-control system",
        (_p("freeze_id", "Text", "id of the freeze"), _p("expires_on", "Date", "new expiry")),
    ),
    ActionSpec(
        "unfreeze", "解除冻结", "Lift a freeze", "解除冻结",
        (_p("debtor", "Role", "owner of the property"), _p("kind", "PropertyKind", "kind")),
        True, "inquiry-and-control system", _ACK,
    ),
    ActionSpec(
        "deduct", "扣划", "Deduct frozen money", "扣划",
        (_p("debtor", "Role", "whose money is deducted"), _p("amount", "Money", "sum deducted")),
        True, "inquiry-and-control system", _ACK,
    ),
    ActionSpec(
        "pay_out", "发放案款", "Pay case money out", "发放执行案款",
        (_p("payee", "Role", "who receives it"), _p("amount", "Money", "sum paid out")),
        True, "case money system", _ACK,
    ),
    ActionSpec(
        "list_dishonest_debtor", "纳入失信名单", "List as a dishonest judgment debtor",
        "纳入失信被执行人名单",
        (_p("debtor", "Role", "the debtor"), _p("reason", "Text", "legal ground")),
        True, "credit system", _ACK,
    ),
    ActionSpec(
        "delist_dishonest_debtor", "删除失信信息", "Remove from the dishonest debtor list",
        "删除失信信息",
        (_p("debtor", "Role", "the debtor"),),
        False, "credit system", _ACK,
    ),
    ActionSpec(
        "restrict_high_spending", "限制高消费", "Restrict high spending", "限制消费令",
        (_p("debtor", "Role", "the debtor"),),
        True, "credit system", _ACK,
    ),
    ActionSpec(
        "lift_spending_restriction", "解除限制消费", "Lift the spending restriction",
        "解除限制消费",
        (_p("debtor", "Role", "the debtor"),),
        False, "credit system", _ACK,
    ),
    ActionSpec(
        "terminate_enforcement_for_now", "终结本次执行", "Close enforcement for now (no property)",
        "终结本次执行程序",
        (_p("reason", "Text", "why no property could be enforced"),),
        True, "enforcement system", _ACK,
    ),
    ActionSpec(
        "close_case", "结案", "Close the case", "结案",
        (_p("outcome", "Text", "how the case ended"),),
        False, "case management system", _ACK,
    ),
    ActionSpec(
        "accelerate_loan", "宣布提前到期", "Declare the whole loan due", "宣布贷款提前到期",
        (_p("borrower", "Role", "the borrower"), _p("amount", "Money", "outstanding sum")),
        False, "lender's system", _ACK,
    ),
    ActionSpec(
        "record_service", "送达存证", "Record a served document on the ledger", "送达存证",
        (_p("party", "Role", "served party"), _p("document", "Text", "what was served")),
        False, "service system", _ACK,
    ),
)

ACTIONS: Mapping[str, ActionSpec] = MappingProxyType({s.name: s for s in _SPECS})
_BY_ALIAS: Mapping[str, ActionSpec] = MappingProxyType({s.alias: s for s in _SPECS})


def find_action(name: str) -> ActionSpec | None:
    """Look an action up by its English name or its Chinese alias."""
    return ACTIONS.get(name) or _BY_ALIAS.get(name)
