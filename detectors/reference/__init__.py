"""The reference implementation, in Python, of every step the C accelerators run.

Each module here has the API of one C extension (``fold`` of ``detectors._fold``, ``link`` of
``detectors._link``, ``skeleton`` of ``detectors._skeleton``) and defines what it computes; the
extensions are optional and pinned to these by ``tests/detectors/test_accelerators.py``. The other
accelerated steps have their reference beside their caller: the contract's checks (``events``), River's
own HalfSpaceTrees (``scoring``), the intent model (``intent``) and RE2's phrase scan (``features``).
:mod:`detectors.accelerators` picks the C module or its reference at import.
"""
