"""The .jrule language: parser, checker, compiler to IR, and author tools.

Pipeline (see docs/architecture.md): text -> parse tree (:mod:`parse`) ->
AST (:mod:`to_ast`) -> checked AST (:mod:`check`) -> IR (:mod:`to_ir`).
"""

from rules_dsl.diagnostics import CompileError, Diagnostic, JruleError
from rules_dsl.syntax import parse_bytes, parse_source

__all__ = ["CompileError", "Diagnostic", "JruleError", "parse_bytes", "parse_source"]
