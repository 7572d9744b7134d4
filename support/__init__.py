"""What the tests, the benchmarks and the scripts share: the servers, proxies and the headless browser they start.

Imported as ``support.<module>`` with the repository's top folder on ``sys.path`` (pytest's
``pythonpath``; the benchmarks and scripts insert it). It imports the library, never
``tests/``, ``benchmarks/`` or ``scripts/``; those three import it and not each other.
"""
