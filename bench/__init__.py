"""``make bench``: Broker's benchmarks, one module per section (:mod:`bench.run` runs them all).

Why a package: the sections share helpers (:mod:`bench.report`, :mod:`bench.wsload`,
:mod:`bench.plainnode`, :mod:`bench.systems`) and the test suite's node harness
(:mod:`tests.node`, :mod:`tests.rawwamp`), all imported by their package names. Run a
section from the repository root as a module, ``.venv/bin/python -m bench.<name>
[--quick]``, so both packages resolve from there with no edit of ``sys.path``.
"""
