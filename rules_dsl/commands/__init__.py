"""The ``jrule`` subcommands, one module each (see :mod:`rules_dsl.cli`)."""
