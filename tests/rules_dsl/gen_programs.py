"""A deterministic generator of valid, realistic ``.jrule`` rule sets.

``generate_ruleset(n_contracts, seed)`` returns the text of a rule set that the
checker accepts with no errors (and, by construction, no warnings): roles,
enums, records, terms of every type, variables, a state machine whose states
are all reachable with no dead ends, events with payloads and ``by`` roles,
transitions whose guards are provably disjoint or ordered by priority,
``if``/``else``, ``set``, ``do`` with correctly typed named arguments (the
approval-gated actions always carry ``approved by ROLE within ...``), deadlines
of every timing form, ``cite``, ``suspend``/``resume``/``restart``, local
modules and ``import``, and Chinese identifiers in some contracts.

The same ``(n_contracts, seed)`` always gives the same text: only
``random.Random(seed)`` is used, and nothing iterates over a set.

``valid_programs()`` is a hypothesis strategy built on it.  The module is used
by the fuzz and determinism tests and by ``bench/bench_compile.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contracts_lib.actions import ACTIONS, ActionSpec

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "APPROVAL_ACTIONS",
    "generate_contract",
    "generate_ruleset",
    "valid_programs",
]

#: Actions that must be confirmed by an officer (taken from the catalogue).
APPROVAL_ACTIONS: tuple[str, ...] = tuple(a.name for a in ACTIONS.values() if a.needs_approval)

# --- vocabulary ------------------------------------------------------------------
# (english name, chinese name, title)

_ROLES = [
    ("applicant", "申请人", "申请执行人 Applicant"),
    ("respondent", "被执行人", "被执行人 Respondent"),
    ("judge", "承办法官", "承办法官 Judge in charge"),
    ("guarantor", "担保人", "担保人 Guarantor"),
    ("clerk", "书记员", "书记员 Clerk"),
    ("mediator", "调解员", "调解员 Mediator"),
]

_ENUMS = [
    ("CaseCategory", "案由", "案由 Cause of action",
     [("loan", "借款"), ("sales", "买卖"), ("lease", "租赁"), ("labour", "劳动争议")]),
    ("PayChannel", "付款方式", "付款方式 Payment channel",
     [("bank", "银行转账"), ("cash", "现金"), ("online", "网上支付")]),
    ("Urgency", "紧急程度", "紧急程度 Urgency",
     [("normal", "一般"), ("urgent", "紧急"), ("critical", "特急")]),
]

# record: (en, zh, title, [(field en, field zh, type, title)])
_RECORD = ("Instalment", "分期", "分期付款 Instalment",
           [("due", "到期日", "Date", "到期日"), ("amount", "金额", "Money", "应付金额"),
            ("note", "说明", "Text", None)])

_NONTERMINAL_STATES = [
    ("filed", "立案", "已立案 Filed"),
    ("reviewing", "审查中", "审查 Under review"),
    ("performing", "履行中", "履行中 Performing"),
    ("enforcing", "执行中", "执行中 Enforcing"),
    ("monitoring", "监督中", "监督 Monitoring"),
    ("mediating", "调解中", "调解 Mediating"),
    ("appealing", "上诉中", "上诉 On appeal"),
]
_TERMINAL_STATES = [
    ("done", "已履行", "已履行完毕 Performed"),
    ("closed", "已结案", "结案 Closed"),
    ("withdrawn", "已撤回", "撤回 Withdrawn"),
]

_EVENTS = [
    ("submit_evidence", "提交证据", "提交证据 Evidence submitted"),
    ("serve_notice", "送达通知", "送达 Notice served"),
    ("hearing_held", "开庭", "开庭 Hearing held"),
    ("judgment_issued", "作出判决", "判决 Judgment issued"),
    ("apply_enforcement", "申请执行", "申请执行 Enforcement applied for"),
    ("property_found", "发现财产", "发现财产 Property found"),
    ("settlement_reached", "达成和解", "和解 Settlement reached"),
    ("objection_filed", "提出异议", "异议 Objection filed"),
    ("report_filed", "申报财产", "财产报告 Property report filed"),
    ("payment", "付款", "付款 Payment made"),
    ("partial_payment", "部分付款", "部分付款 Partial payment"),
    ("withdraw", "撤回申请", "撤回 Application withdrawn"),
]

# payload fields: (en, zh, type)  -- "ENUM" is replaced by the contract's enum
_PAYLOAD_FIELDS = [
    ("amount", "金额", "Money"),
    ("on_date", "日期", "Date"),
    ("at", "时间", "DateTime"),
    ("note", "说明", "Text"),
    ("urgent", "紧急", "Bool"),
    ("pieces", "件数", "Int"),
    ("ratio", "比例", "Decimal"),
    ("category", "类别", "ENUM"),
    ("party", "当事人", "Role"),
    ("property", "财产类型", "PropertyKind"),
]

_DEADLINES = [
    ("reply", "答辩期限", "答辩期 Reply period"),
    ("payment_due", "履行期限", "履行期限 Time to perform"),
    ("appeal_period", "上诉期限", "上诉期 Appeal period"),
    ("freeze_renewal", "续冻期限", "续行冻结 Renew the freeze"),
    ("review_due", "复查期限", "复查 Review"),
    ("reminder", "提醒", "履行提醒 Reminder"),
    ("property_report", "报告期限", "财产报告 Property report"),
    ("service_due", "送达期限", "送达 Service"),
    ("supplement_due", "补正期限", "补正 Supplement"),
    ("progress_check", "进度检查", "定期检查 Periodic check"),
]

_TEXTS = [
    "请按期履行", "已收到款项", "逾期未履行", "财产已查控", "依法冻结银行存款",
    "please perform on time", "notice of enforcement", "调解不成", "申请人撤回申请",
    "履行完毕", "分期付款到期", "终结本次执行程序", "案件已结",
]
_TEXTS_ESCAPED = [
    r"第一行\n第二行", r"引号\"内\"", r"制表\t符", r"\u4e2d\u6587", r"反斜杠\\",
]
_CITES = [
    "《民事诉讼法》第二百四十七条", "《民事诉讼法》第二百五十条", "《民事诉讼法》第一百七十一条",
    "最高法《关于执行案件立案、结案若干问题的意见》第十七条",
    "《关于人民法院办理财产保全案件若干问题的规定》",
    "《最高人民法院关于限制被执行人高消费的若干规定》第一条", "Civil Procedure Law art. 264",
    "《关于公布失信被执行人名单信息的若干规定》第一条", "art. 6",
]

#: builtin enums of the catalogue, and one variant each for literals
_BUILTIN_ENUM_VALUES = {
    "PropertyKind": ["bank_deposit", "movable", "real_estate", "other_right"],
    "Procedure": ["ordinary", "summary", "small_claims"],
}

_ORDERED = ("Money", "Int", "Decimal", "Date", "DateTime")


@dataclass
class _Sym:
    name: str
    type: str
    kind: str  # "term" | "var"


@dataclass
class _Ctx:
    """Where an expression is written."""

    event: str | None = None  # name of the event whose payload is visible
    timing: bool = False


@dataclass
class _ContractGen:
    rng: random.Random
    index: int
    chinese: bool
    modules: list[tuple[str, str, str]] = field(default_factory=list)  # (name, enum, record)

    def __post_init__(self) -> None:
        self.taken: set[str] = set()
        self.used: set[str] = set()
        self.syms: list[_Sym] = []
        self.lines: list[str] = []
        self.roles: list[str] = []
        self.enum_name = ""
        self.enum_variants: list[str] = []
        self.other_enums: dict[str, list[str]] = {}
        self.rec_name = ""
        self.rec_fields: dict[str, str] = {}  # type -> field name
        self.events: dict[str, list[tuple[str, str]]] = {}  # name -> [(field, type)]
        self.deadline_names: list[str] = []
        self.deadline_titles: dict[str, str] = {}
        self.n_deadlines = 0  # deadlines written so far (timings may name them)
        self.states: list[str] = []
        self.terminals: list[str] = []
        self.timings: set[str] = set()

    # --- helpers -----------------------------------------------------------
    def pick(self, en: str, zh: str) -> str:
        base = zh if self.chinese else en
        name, n = base, 2
        while name in self.taken:
            name = f"{base}_{n}"
            n += 1
        self.taken.add(name)
        return name

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def text_lit(self) -> str:
        if self.chance(0.15):
            return f'"{self.rng.choice(_TEXTS_ESCAPED)}"'
        return f'"{self.rng.choice(_TEXTS)}"'

    def money_lit(self) -> str:
        yen = self.rng.choice(["¥", "¥", "¥", "￥"])
        whole = self.rng.choice([0, 1, 50, 100, 1000, 2500, 10000, 123456, 5000000])
        if self.chance(0.3):
            return f"{yen}{whole}"
        return f"{yen}{whole}.{self.rng.randrange(100):02d}"

    def date_lit(self) -> str:
        y = self.rng.randint(2024, 2030)
        m = self.rng.randint(1, 12)
        d = self.rng.randint(1, 28)
        return f"{y:04d}-{m:02d}-{d:02d}"

    def datetime_lit(self) -> str:
        tz = self.rng.choice(["+08:00", "Z", "", "+08:00"])
        sec = self.rng.choice([":00", ""]) if tz else ":00"
        hour, minute = self.rng.randint(0, 23), self.rng.randint(0, 59)
        return f"{self.date_lit()}T{hour:02d}:{minute:02d}{sec}{tz}"

    def decimal_lit(self) -> str:
        return self.rng.choice(["0.05", "1.5", "0.000175", "2.0", "0.3", "1.25", "0.0385"])

    def period(self, working: bool = True, names: bool = True) -> str:
        ints = [s for s in self.syms if s.type == "Int" and s.kind == "term"]
        if names and ints and self.chance(0.15):
            s = self.rng.choice(ints)
            self.used.add(s.name)
            if self.chance(0.3):  # a computed length: `(grace_days + 5) days`
                return f"({s.name} + {self.rng.randint(1, 10)}) days"
            return f"{s.name} days"
        unit = self.rng.choice(["days", "working days", "months", "years"] if working
                               else ["days", "months", "years"])
        n = {"days": self.rng.choice([1, 3, 7, 10, 15, 30, 60]),
             "working days": self.rng.choice([1, 2, 3, 5, 10]),
             "months": self.rng.choice([1, 2, 3, 6]),
             "years": self.rng.choice([1, 2])}[unit]
        if n == 1 and unit != "working days":
            unit = unit[:-1]
        elif n == 1:
            unit = "working day"
        return f"{n} {unit}"

    def approval_period(self) -> str:
        if self.chance(0.8):
            return f"{self.rng.choice([1, 2, 3, 5, 7])} working days"
        return self.period()

    def role_for(self, param: str, ctx: _Ctx) -> str:
        """A role that fits the parameter: the debtor is sued, the creditor is paid."""
        if param in ("debtor", "respondent", "defendant", "borrower"):
            return self.roles[1]
        if param in ("applicant", "plaintiff", "payee"):
            return self.roles[0]
        if self.chance(0.3):
            return self.atom("Role", ctx)
        return self.rng.choice(self.roles[:2] + self.roles[3:])

    # --- expressions -------------------------------------------------------
    def sym_of(self, type_: str) -> str | None:
        cands = [s for s in self.syms if s.type == type_]
        if not cands:
            return None
        unused = [s for s in cands if s.name not in self.used]
        s = self.rng.choice(unused if unused and self.chance(0.7) else cands)
        self.used.add(s.name)
        return s.name

    def payload_of(self, type_: str, ctx: _Ctx) -> str | None:
        if ctx.event is None:
            return None
        cands = [f for f, t in self.events[ctx.event] if t == type_]
        if not cands:
            return None
        return f"{ctx.event}.{self.rng.choice(cands)}"

    def list_elem(self) -> str | None:
        """An expression of the record type (from a List[record] term), or None."""
        lst = self.sym_of(f"list:rec:{self.rec_name}") if self.rec_name else None
        if lst is None:
            return None
        return self.rng.choice([f"{lst}[0]", f"first({lst})", f"last({lst})",
                                f"{lst}[count({lst}) - 1]"])

    def atom(self, type_: str, ctx: _Ctx) -> str:
        """A leaf of the type: symbol, payload field or literal (always succeeds)."""
        options: list[Callable[[], str | None]] = []
        options.append(lambda: self.sym_of(type_))
        options.append(lambda: self.payload_of(type_, ctx))
        for opt in self.rng.sample(options, len(options)):
            got = opt() if self.chance(0.75) else None
            if got is not None:
                return got
        return self.literal(type_)

    def literal(self, type_: str) -> str:
        rng = self.rng
        if type_ == "Money":
            return self.money_lit()
        if type_ == "Int":
            return str(rng.choice([0, 1, 2, 3, 5, 10, 30, 100]))
        if type_ == "Decimal":
            return self.decimal_lit()
        if type_ == "Bool":
            return rng.choice(["true", "false"])
        if type_ == "Text":
            return self.text_lit()
        if type_ == "Date":
            return self.date_lit()
        if type_ == "DateTime":
            return self.datetime_lit()
        if type_ == "Role":
            return rng.choice(self.roles)
        if type_.startswith("enum:"):
            enum = type_[5:]
            variants = self.enum_variants if enum == self.enum_name else (
                _BUILTIN_ENUM_VALUES.get(enum) or self.other_enums[enum])
            return f"{enum}.{rng.choice(variants)}"
        if type_.startswith("list:"):
            elem = type_[5:]
            if elem.startswith("rec:"):
                return "[]"
            n = rng.randint(0, 3)
            return "[" + ", ".join(self.literal(elem) for _ in range(n)) + "]"
        if type_.startswith("rec:"):
            raise LookupError(type_)
        raise AssertionError(type_)

    def expr(self, type_: str, ctx: _Ctx, depth: int = 2) -> str:
        rng = self.rng
        if depth <= 0 or self.chance(0.35):
            if type_.startswith("rec:"):
                got = self.sym_of(type_) or self.list_elem()
                assert got is not None
                return got
            return self.atom(type_, ctx)
        d = depth - 1
        sub = self.expr
        forms: list[Callable[[], str | None]] = []
        if type_ == "Money":
            forms += [
                lambda: f"{sub('Money', ctx, d)} + {sub('Money', ctx, d)}",
                lambda: f"{sub('Money', ctx, d)} - {self.atom('Money', ctx)}",
                lambda: f"{self.atom('Money', ctx)} * {rng.choice(['2', '3', '12'])}",
                lambda: f"round({self.atom('Money', ctx)} * {self.atom('Decimal', ctx)}, "
                f"{rng.choice(['half_up', 'half_even', 'down', 'up'])})",
                lambda: f"round({self.atom('Money', ctx)} / {rng.choice(['3', '12', '1.5'])}, "
                "half_up)",
                lambda: f"{rng.choice(['max', 'min'])}({sub('Money', ctx, d)}, "
                f"{self.atom('Money', ctx)})",
                lambda: f"delay_interest({self.atom('Money', ctx)}, {self.atom('Date', ctx)}, "
                f"{self.atom('Date', ctx)})",
                lambda: (f"sum({s})" if (s := self.sym_of("list:Money")) else None),
                lambda: (f"{e}.{self.rec_fields['Money']}" if (e := self.list_elem()) else None),
                lambda: f"({sub('Money', ctx, d)})",
            ]
        elif type_ == "Int":
            forms += [
                lambda: f"{sub('Int', ctx, d)} + {self.atom('Int', ctx)}",
                lambda: f"{self.atom('Int', ctx)} * {self.atom('Int', ctx)}",
                lambda: f"-{self.atom('Int', ctx)}",
                lambda: f"days_between({self.atom('Date', ctx)}, {self.atom('Date', ctx)})",
                lambda: (f"count({s})" if (s := self.sym_of(rng.choice(
                    ["list:Money", f"list:rec:{self.rec_name}"]))) else None),
                lambda: f"max({self.atom('Int', ctx)}, {self.atom('Int', ctx)})",
            ]
        elif type_ == "Decimal":
            forms += [
                lambda: f"{self.atom('Decimal', ctx)} * {self.atom('Decimal', ctx)}",
                lambda: f"{self.atom('Decimal', ctx)} / {self.decimal_lit()}",
                lambda: f"{self.atom('Decimal', ctx)} + {self.atom('Int', ctx)}",
                lambda: f"{self.atom('Money', ctx)} / ¥{rng.choice(['100', '1000.00', '3.50'])}",
                lambda: f"min({self.atom('Decimal', ctx)}, {self.atom('Int', ctx)})",
            ]
        elif type_ == "Bool":
            forms += [
                lambda: self.comparison(ctx, d),
                lambda: self.comparison(ctx, d),
                lambda: f"not {self.atom('Bool', ctx)}",
                lambda: f"{self.comparison(ctx, d)} and {sub('Bool', ctx, d)}",
                lambda: f"({self.comparison(ctx, d)} or {sub('Bool', ctx, d)})",
            ]
        elif type_ == "Text":
            forms += [
                lambda: f"{self.atom('Text', ctx)} + {self.text_lit()}",
                lambda: f"text({self.atom(rng.choice(['Int', 'Money', 'Date', 'Decimal']), ctx)})",
            ]
        elif type_ == "Date":
            forms += [
                lambda: "today",
                lambda: f"date({self.atom('DateTime', ctx)})",
                # a date under the legal-period rules: `(15 days after served_on)`
                lambda: f"({self.period()} {rng.choice(['after', 'before'])} "
                f"{self.atom('Date', ctx)})",
                lambda: (f"{e}.{self.rec_fields['Date']}" if (e := self.list_elem()) else None),
                lambda: f"{rng.choice(['max', 'min'])}({self.atom('Date', ctx)}, "
                f"{self.atom('Date', ctx)})",
            ]
        elif type_ == "DateTime":
            forms += [lambda: "now"]
        elif type_.startswith("list:"):
            elem = type_[5:]
            if not elem.startswith("rec:"):
                forms += [lambda: "[" + ", ".join(sub(elem, ctx, d)
                                                   for _ in range(rng.randint(1, 3))) + "]"]
        elif type_.startswith("rec:"):
            forms += [self.list_elem]
        for form in rng.sample(forms, len(forms)):
            got = form()
            if got is not None:
                return got
        return self.expr(type_, ctx, 0)

    def comparison(self, ctx: _Ctx, depth: int) -> str:
        rng = self.rng
        t = rng.choice([*_ORDERED, "Money", "Money", "Text", "Role", f"enum:{self.enum_name}",
                        "Bool"])
        if t == "Bool":
            return self.atom("Bool", ctx)
        if t in _ORDERED:
            op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
        else:
            op = rng.choice(["==", "!="])
        left = self.expr(t, ctx, depth)
        right = self.atom(t, ctx)
        for _ in range(5):  # `x > x` is not a realistic condition
            if right != left:
                break
            right = self.atom(t, ctx)
        return f"{left} {op} {right}"

    # --- statements --------------------------------------------------------
    def action(self, ctx: _Ctx, ind: str, depth: int, allow_goto: bool) -> list[str]:
        rng = self.rng
        spec: ActionSpec = rng.choice(list(ACTIONS.values()))
        name = spec.alias if (self.chinese and self.chance(0.5)) else spec.name
        args = []
        for p in spec.params:
            t = p.type
            if t in _BUILTIN_ENUM_VALUES:
                t = f"enum:{t}"
            if t == "Role":
                value = self.role_for(p.name, ctx)
            else:
                value = self.expr(t, ctx, 1)
            args.append(f"{p.name}: {value}")
        rng.shuffle(args)
        trailing = "," if self.chance(0.1) else ""
        head = f"{ind}do {name}({', '.join(args)}{trailing})"
        if not spec.needs_approval:
            return [head]
        officer = self.roles[2]
        head += f" approved by {officer} within {self.approval_period()}"
        out = [head]
        outcomes = [o for o in ("approved", "rejected", "timeout") if self.chance(0.5)]
        if spec.name in APPROVAL_ACTIONS and "timeout" not in outcomes and self.chance(0.6):
            outcomes.append("timeout")
        rng.shuffle(outcomes)
        for outcome in outcomes:
            goto = None
            if allow_goto and outcome != "approved" and self.chance(0.3):
                goto = rng.choice(self.terminals + self.states)
            body = self.block(ctx, ind + "    ", depth - 1, goto, max_stmts=2, min_stmts=1)
            out.append(f"{ind}  on {outcome} {{")
            out += body
            out.append(f"{ind}  }}")
        return out

    def stmt(self, ctx: _Ctx, ind: str, depth: int, allow_goto: bool) -> list[str]:
        rng = self.rng
        kinds = ["set", "set", "do", "do", "do", "period"]
        if depth > 0:
            kinds += ["if", "if"]
        kind = rng.choice(kinds)
        if kind == "set":
            var = rng.choice([s for s in self.syms if s.kind == "var"])
            self.used.add(var.name)
            if var.type == "Money" and self.chance(0.5):
                value = f"{var.name} + {self.atom('Money', ctx)}"
            elif var.type == "Int" and self.chance(0.5):
                value = f"{var.name} + 1"
            elif var.type.startswith("rec:"):
                value = self.expr(var.type, ctx, 1)
            else:
                value = self.expr(var.type, ctx, 2)
                for _ in range(5):  # `set x = x` says nothing
                    if value != var.name:
                        break
                    value = self.expr(var.type, ctx, 2)
            return [f"{ind}set {var.name} = {value}"]
        if kind == "do":
            return self.action(ctx, ind, depth, allow_goto)
        if kind == "period":
            op = rng.choice(["suspend", "resume", "restart"])
            return [f"{ind}{op} {rng.choice(self.deadline_names)}"]
        # if / else if / else
        out = []
        n_elif = rng.choice([0, 0, 1, 2])
        has_else = self.chance(0.5)
        goto_branch = allow_goto and self.chance(0.4)
        conds = [self.expr("Bool", ctx, 2) for _ in range(1 + n_elif)]
        for i, cond in enumerate(conds):
            goto = rng.choice(self.terminals) if goto_branch and i == 0 else None
            prefix = "if" if i == 0 else "} else if"
            out.append(f"{ind}{prefix} {cond} {{")
            out += self.block(ctx, ind + "  ", depth - 1, goto, max_stmts=2, min_stmts=1)
        if has_else:
            out.append(f"{ind}}} else {{")
            out += self.block(ctx, ind + "  ", depth - 1, None, max_stmts=2, min_stmts=1)
        out.append(f"{ind}}}")
        return out

    def block(self, ctx: _Ctx, ind: str, depth: int, goto: str | None,
              max_stmts: int = 4, min_stmts: int = 0) -> list[str]:
        out: list[str] = []
        n = self.rng.randint(min_stmts, max_stmts)
        for i in range(n):
            # a goto inside an `if` may only come in the last statement
            last = i == n - 1 and goto is None
            out += self.stmt(ctx, ind, depth, allow_goto=last)
        if goto is not None:
            out.append(f"{ind}goto {goto}")
        return out

    # --- declarations -----------------------------------------------------
    def declare(self) -> None:
        rng = self.rng
        zh = self.chinese
        add = self.lines.append
        for imp_name, _enum, _rec in self.modules:
            add(f"  import {imp_name}")
            self.taken.update([imp_name, _enum, _rec])
        # roles: creditor, debtor, officer, and maybe more
        n_roles = rng.randint(3, len(_ROLES))
        for en, cn, title in _ROLES[:n_roles]:
            name = self.pick(en, cn)
            self.roles.append(name)
            add(f'  role {name} "{title}"' if self.chance(0.8) else f"  role {name}")
        # the contract's own enum
        en, cn, title, variants = rng.choice(_ENUMS)
        self.enum_name = self.pick(en, cn)
        chosen = variants[: rng.randint(2, len(variants))]
        self.enum_variants = [v_cn if zh else v_en for v_en, v_cn in chosen]
        body = ", ".join(
            f'{v} "{v_cn}"' if self.chance(0.6) else v
            for v, (_en, v_cn) in zip(self.enum_variants, chosen, strict=True)
        )
        trailing = "," if self.chance(0.3) else ""
        add(f'  enum {self.enum_name} "{title}" {{ {body}{trailing} }}')
        # a record
        r_en, r_cn, r_title, r_fields = _RECORD
        self.rec_name = self.pick(r_en, r_cn)
        add(f'  record {self.rec_name} "{r_title}" {{')
        for f_en, f_cn, f_type, f_title in r_fields:
            fname = f_cn if zh else f_en
            self.rec_fields[f_type] = fname
            title_part = f' "{f_title}"' if f_title else ""
            comma = "," if self.chance(0.5) else ""
            add(f"    {fname}: {f_type}{title_part}{comma}")
        add("  }")
        # terms: core ones always, the rest sometimes; every type appears
        rec = f"rec:{self.rec_name}"
        terms = [
            ("amount", "金额", "Money", "Money", "标的金额 Amount", True),
            ("signed_on", "签订日", "Date", "Date", "签订日期 Signed on", True),
            ("due_date", "履行期限日", "Date", "Date", "履行期限 Due date", True),
            ("grace_days", "宽限天数", "Int", "Int", "宽限期 Grace days", True),
            ("rate", "利率", "Decimal", "Decimal", "日利率 Daily rate", True),
            ("allow_instalments", "允许分期", "Bool", "Bool", "是否允许分期", False),
            ("basis", "执行依据", "Text", "Text", "执行依据 Enforceable document", False),
            ("served_at", "送达时间", "DateTime", "DateTime", "送达时间 Served at", False),
            ("duty_officer", "值班人员", "Role", "Role", None, False),
            ("property_kind", "财产类型", "PropertyKind", "enum:PropertyKind", None, False),
            ("procedure", "程序类型", "Procedure", "enum:Procedure", "适用程序", False),
            ("category", "类别", self.enum_name, f"enum:{self.enum_name}", None, False),
            ("plan", "还款计划", f"List[{self.rec_name}]", f"list:{rec}", "分期计划", True),
            ("first_instalment", "首期", self.rec_name, rec, None, False),
            ("fees", "费用清单", "List[Money]", "list:Money", "各项费用 Fees", False),
        ]
        for _imp, m_enum, m_rec in self.modules:
            terms.append((f"channel_{m_enum.lower()}", f"渠道_{m_enum}", m_enum,
                          f"enum:{m_enum}", None, True))
            terms.append((f"receipt_{m_rec.lower()}", f"收据_{m_rec}", m_rec,
                          f"rec:{m_rec}", None, True))
            self.other_enums[m_enum] = list(_MODULE_ENUM_VARIANTS)
        rng.shuffle(terms)
        for en, cn, type_text, type_, title, core in terms:
            if not (core or self.chance(0.6)):
                continue
            name = self.pick(en, cn)
            self.syms.append(_Sym(name, type_, "term"))
            add(f'  term {name}: {type_text} "{title}"' if title else
                f"  term {name}: {type_text}")
        # vars: init from literals or terms (never from other vars)
        vars_ = [
            ("paid", "已付金额", "Money", "Money"),
            ("reminders", "催告次数", "Int", "Int"),
            ("warned", "已警告", "Bool", "Bool"),
            ("last_note", "备注", "Text", "Text"),
            ("last_paid_on", "最近付款日", "Date", "Date"),
            ("stage", "阶段", self.enum_name, f"enum:{self.enum_name}"),
            ("factor", "系数", "Decimal", "Decimal"),
            ("history", "付款记录", "List[Money]", "list:Money"),
            ("last_seen", "最近时间", "DateTime", "DateTime"),
            ("current_holder", "当前承办人", "Role", "Role"),
        ]
        rng.shuffle(vars_)
        n_vars = rng.randint(3, len(vars_))
        declared_vars = []
        for en, cn, type_text, type_ in vars_[:n_vars]:
            name = self.pick(en, cn)
            init = self.atom(type_, _Ctx()) if type_ != "Money" or self.chance(0.5) \
                else rng.choice(["¥0.00", "¥0"])
            title = f' "{cn}"' if self.chance(0.4) else ""
            add(f"  var {name}: {type_text} = {init}{title}")
            declared_vars.append(_Sym(name, type_, "var"))
        self.syms += declared_vars  # after the inits: an init may not use a var
        # states
        k = rng.randint(2, 5)
        chosen_states = rng.sample(_NONTERMINAL_STATES, k)
        for i, (en, cn, title) in enumerate(chosen_states):
            name = self.pick(en, cn)
            self.states.append(name)
            flag = " initial" if i == 0 else ""
            add(f'  state {name} "{title}"{flag}' if self.chance(0.7) else
                f"  state {name}{flag}")
        for en, cn, title in _TERMINAL_STATES[: rng.randint(1, 3)]:
            name = self.pick(en, cn)
            self.terminals.append(name)
            add(f'  state {name} "{title}" terminal')
        # events: one to advance each state, plus a few that apply in several states
        pool = rng.sample(_EVENTS, k + rng.randint(1, 3))
        for en, cn, title in pool:
            name = self.pick(en, cn)
            fields = rng.sample(_PAYLOAD_FIELDS, rng.randint(0, 4))
            if en in ("payment", "partial_payment") and not any(
                    f[2] == "Money" for f in fields):
                fields.append(_PAYLOAD_FIELDS[0])
            payload = []
            field_lines = []
            for f_en, f_cn, f_type in fields:
                fname = f_cn if zh else f_en
                tt = self.enum_name if f_type == "ENUM" else f_type
                t = f"enum:{tt}" if f_type in ("ENUM", "PropertyKind") else f_type
                payload.append((fname, t))
                field_lines.append(f"{fname}: {tt}")
            self.events[name] = payload
            by = ", ".join(rng.sample(self.roles, rng.randint(1, min(3, len(self.roles)))))
            fields_text = ""
            if field_lines:
                sep = ", " if self.chance(0.5) else " "
                fields_text = " { " + sep.join(field_lines) + " }"
            add(f'  event {name} "{title}" by {by}{fields_text}')
        # deadline names are known before any body mentions them
        # (one more than there are states: deadline number k reaches the middle terminal)
        for en, cn, title in rng.sample(_DEADLINES, rng.randint(k + 1, min(len(_DEADLINES),
                                                                         2 * k + 1))):
            name = self.pick(en, cn)
            self.deadline_names.append(name)
            self.deadline_titles[name] = title

    # --- rules --------------------------------------------------------------
    def guard_group(self, event: str) -> list[tuple[str | None, str | None]]:
        """(guard, priority) for each transition on one event: never overlapping."""
        rng = self.rng
        ctx = _Ctx(event=event)
        kind = rng.choice(["single", "single", "not", "relation", "enum", "priority", "and"])
        enum_fields = [f for f, t in self.events[event] if t == f"enum:{self.enum_name}"]
        if kind == "enum" and not enum_fields:
            kind = "not"
        if kind == "single":
            return [(self.expr("Bool", ctx, 2) if self.chance(0.5) else None, None)]
        if kind == "not":
            # not a top-level `and`: the checker compares conjuncts, so `a and b`
            # against `not (a and b)` is not recognised as disjoint
            g = self.comparison(ctx, 2) if self.chance(0.7) else self.atom("Bool", ctx)
            return [(g, None), (f"not ({g})", None)]
        if kind == "and":
            g = self.comparison(ctx, 1)
            h = self.expr("Bool", ctx, 1)
            return [(f"{g} and {h}", None), (f"not ({g})", None)]
        if kind == "relation":
            t = rng.choice(_ORDERED)
            left = self.expr(t, ctx, 1)
            right = self.atom(t, ctx)
            a, b = rng.choice([(">=", "<"), ("<", ">="), ("==", "!="), ("<=", ">"), (">", "<=")])
            return [(f"{left} {a} {right}", None), (f"{left} {b} {right}", None)]
        if kind == "enum":
            fname = rng.choice(enum_fields)
            variants = rng.sample(self.enum_variants, rng.randint(2, len(self.enum_variants)))
            return [(f"{event}.{fname} == {self.enum_name}.{v}", None) for v in variants]
        # priority: overlapping guards, ordered
        n = rng.randint(2, 3)
        prios = rng.sample(range(1, 10), n)
        return [(self.expr("Bool", ctx, 1) if self.chance(0.6) else None, str(p))
                for p in prios]

    def transitions(self) -> None:
        rng = self.rng
        add = self.lines.append
        events = list(self.events)
        k = len(self.states)
        plan: list[tuple[str, list[str] | None, str | None]] = []
        for i, state in enumerate(self.states):
            nxt = self.states[i + 1] if i + 1 < k else self.terminals[0]
            plan.append((events[i], [state], nxt))
        for j, event in enumerate(events[k:]):
            if j == 0 and len(self.terminals) > 1:
                # reaches the last terminal; applies in every non-terminal state
                plan.append((event, None, self.terminals[-1]))
            else:
                states = rng.sample(self.states, rng.randint(1, k))
                plan.append((event, states, None))
        # the middle terminal (if any) is reached from a deadline (see deadlines())
        for event, states, target in plan:
            for t_index, (guard, prio) in enumerate(self.guard_group(event)):
                ctx = _Ctx(event=event)
                head = f"  on {event}"
                if states is not None:
                    head += " in " + ", ".join(states)
                if guard is not None:
                    head += f" when {guard}"
                if prio is not None:
                    head += f" priority {prio}"
                if self.chance(0.3):
                    head += f' cite "{rng.choice(_CITES)}"'
                goto = target if t_index == 0 or self.chance(0.5) else None
                body = self.block(ctx, "    ", 2, goto, max_stmts=3, min_stmts=0)
                if not body:
                    add(head + " {}")
                    continue
                add(head + " {")
                self.lines.extend(body)
                add("  }")

    def timing(self) -> str:
        rng = self.rng
        ctx = _Ctx(timing=True)
        for _ in range(50):
            form = rng.choice(["by", "after", "after", "before", "every"])
            t = self._timing(form, ctx)
            if t not in self.timings:
                self.timings.add(t)
                return t
        t = f"{len(self.timings) + 1} days after entering"  # unique fallback
        self.timings.add(t)
        return t

    def date_anchor(self, ctx: _Ctx) -> str:
        rng = self.rng
        choices: list[Callable[[], str | None]] = [
            lambda: self.sym_of("Date"),
            lambda: rng.choice(list(self.events)),  # the date the event last happened
            lambda: self._event_date_field(),
            lambda: (f"{e}.{self.rec_fields['Date']}" if (e := self.list_elem()) else None),
            lambda: self.date_lit(),
            lambda: (f"date({s})" if (s := self.sym_of("DateTime")) else None),
            # the last day of an earlier deadline's period
            lambda: rng.choice(self.deadline_names[:self.n_deadlines]) if self.n_deadlines
            else None,
        ]
        for c in rng.sample(choices, len(choices)):
            got = c()
            if got is not None:
                return got
        return self.date_lit()

    def _event_date_field(self) -> str | None:
        cands = [(e, f) for e, fs in self.events.items() for f, t in fs if t == "Date"]
        if not cands:
            return None
        e, f = self.rng.choice(cands)
        return f"{e}.{f}"

    def _timing(self, form: str, ctx: _Ctx) -> str:
        rng = self.rng
        if form == "by":
            return f"by {self.date_anchor(ctx)}"
        if form == "after":
            anchor = "entering" if self.chance(0.4) else self.date_anchor(ctx)
            return f"{self.period()} after {anchor}"
        if form == "before":
            return f"{self.period()} before {self.date_anchor(ctx)}"
        every, limit = rng.choice([("6 months", "5 years"), ("1 month", "2 years"),
                                   ("30 days", "1 year"), ("7 days", "3 months"),
                                   ("1 year", "5 years"), ("3 months", None), ("15 days", None)])
        anchor = "entering" if self.chance(0.6) else self.date_anchor(ctx)
        text = f"every {every} after {anchor}"
        if limit is not None:
            text += f" for {limit}"
        return text

    def deadlines(self) -> None:
        rng = self.rng
        add = self.lines.append
        k = len(self.states)
        for i, name in enumerate(self.deadline_names):
            self.n_deadlines = i
            if i < k:
                states = [self.states[i]]
            else:
                states = rng.sample(self.states, rng.randint(1, min(2, k)))
            goto = None
            if i == k and len(self.terminals) > 2:
                goto = self.terminals[1]  # the only way to the middle terminal
            elif self.chance(0.3):
                goto = rng.choice(self.terminals + self.states)
            title = self.deadline_titles[name]
            head = f"  deadline {name}"
            if self.chance(0.7):
                head += f' "{title}"'
            head += f" in {', '.join(states)}: {self.timing()}"
            if self.chance(0.2):
                head += f" priority {rng.randint(1, 9)}"
            if self.chance(0.4):
                head += f' cite "{rng.choice(_CITES)}"'
            body = self.block(_Ctx(), "    ", 2, goto, max_stmts=3, min_stmts=1)
            add(head + " {")
            self.lines.extend(body)
            add("  }")

    def audit(self) -> None:
        """Use every term and var nobody used yet (no W402), realistically enough."""
        unused = [s for s in self.syms if s.name not in self.used]
        if not unused:
            return
        conds = []
        for s in unused:
            self.used.add(s.name)
            assert s.kind in ("term", "var")
            t = s.type
            n = s.name
            if t == "Money":
                conds.append(f"{n} > ¥0.00")
            elif t in ("Int", "Decimal"):
                conds.append(f"{n} > 0")
            elif t == "Bool":
                conds.append(n)
            elif t == "Text":
                conds.append(f'{n} != ""')
            elif t == "Date":
                conds.append(f"{n} <= today")
            elif t == "DateTime":
                conds.append(f"{n} <= now")
            elif t == "Role":
                conds.append(f"{n} == {self.roles[0]}")
            elif t.startswith("enum:"):
                conds.append(f"{n} == {self.literal(t)}")
            elif t.startswith("list:"):
                conds.append(f"count({n}) > 0")
            elif t.startswith("rec:"):
                conds.append(f"{n}.{self.rec_fields['Money']} > ¥0.00"
                             if t == f"rec:{self.rec_name}" else
                             f"{n}.{_MODULE_RECORD_DATE} <= today")
        name = self.pick("audit", "核查")
        period = self.rng.choice(["1 month", "3 months", "6 months", "1 year"])
        self.lines.append(f'  deadline {name} "定期核查 Periodic audit" in {self.states[0]}: '
                          f"every {period} after entering {{")
        for cond in conds:
            self.lines.append(f"    if {cond} {{")
            self.lines.append(f'      do notify(party: {self.roles[2]}, message: "核查")')
            self.lines.append("    }")
        self.lines.append("  }")

    def render(self) -> str:
        zh = self.chinese
        words = ["借款合同纠纷执行", "调解协议履行", "分期付款买卖合同", "租赁合同强制执行",
                 "劳动争议仲裁执行", "财产保全"]
        cname = (f"合同{self.index}_{self.rng.choice(['执行', '调解', '诉讼', '保全'])}"
                 if zh else f"contract_{self.index}_{self.rng.choice(['loan', 'sale', 'lease'])}")
        self.taken.add(cname)
        self.declare()
        self.transitions()
        self.deadlines()
        self.audit()
        title = f"{self.rng.choice(words)} No.{self.index}"
        version = f"{self.rng.randint(1, 3)}.{self.rng.randint(0, 9)}.{self.rng.randint(0, 20)}"
        comment = f"# {self.rng.choice(words)}\n" if self.chance(0.5) else ""
        return (f'{comment}contract {cname} "{title}" version "{version}" {{\n'
                + "\n".join(self.lines) + "\n}\n")


_MODULE_ENUM_VARIANTS = ("court_counter", "online_portal", "mail")
_MODULE_RECORD_DATE = "issued_on"


def _module(name: str, enum: str, rec: str) -> str:
    variants = ", ".join(_MODULE_ENUM_VARIANTS)
    return (
        f'module {name} "共用类型 Shared types" {{\n'
        f'  enum {enum} "送达渠道" {{ {variants} }}\n'
        f'  record {rec} "收据" {{ number: Text "编号", {_MODULE_RECORD_DATE}: Date }}\n'
        "}\n"
    )


def generate_contract(index: int, seed: int, chinese: bool | None = None,
                      modules: list[tuple[str, str, str]] | None = None) -> str:
    """One valid contract (named after ``index`` so contracts of one file differ)."""
    rng = random.Random(f"jrule-contract:{seed}:{index}")
    if chinese is None:
        chinese = rng.random() < 0.35
    return _ContractGen(rng, index, chinese, list(modules or ())).render()


def generate_ruleset(n_contracts: int, seed: int) -> str:
    """A valid rule set of ``n_contracts`` contracts (plus maybe a local module)."""
    rng = random.Random(f"jrule-ruleset:{seed}")
    parts = [f"# generated by tests/rules_dsl/gen_programs.py (seed {seed})\n"]
    module: tuple[str, str, str] | None = None
    if rng.random() < 0.3:
        module = (f"shared_types_{seed % 1000}", "ServiceChannel", "Receipt")
        parts.append(_module(*module))
    for i in range(n_contracts):
        mods = [module] if module is not None and rng.random() < 0.7 else []
        parts.append(generate_contract(i, seed, modules=mods))
    return "\n".join(parts)


def valid_programs(max_contracts: int = 3) -> SearchStrategy[str]:
    """A hypothesis strategy of valid rule sets (the text)."""
    from hypothesis import strategies as st

    return st.builds(
        generate_ruleset,
        st.integers(min_value=1, max_value=max_contracts),
        st.integers(min_value=0, max_value=2**32 - 1),
    )
