"""Property-testing rule sets before deployment: ``jrule test`` and the deployment gate.

See ``docs/testing.md`` for authors and ``docs/architecture.md`` for how the
modules fit together.  The entry points are :func:`engine.testing.runner.run_suite`
(everything for one rule set), :func:`engine.testing.gate.make_gate` (what a
service runs before deploying) and :func:`engine.testing.history.compare_history`.
"""
