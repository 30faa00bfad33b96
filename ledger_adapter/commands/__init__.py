"""``jrule verify`` and ``jrule witness``: modules with ``add_arguments`` and ``run``."""
