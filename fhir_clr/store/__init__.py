"""The storage port and its adapters.

``port`` (the ``Store`` protocol, changes, errors), ``query`` (the Query AST adapters answer) and ``paging``
(opaque keyset tokens) are shared by the adapter packages ``sqlite`` (embedded default) and ``mongo``
(production); ``factory`` picks one from the settings; ``wrapper``, ``signalling`` and ``timed`` add commit
signals and timing around any of them. Nothing outside this package imports an adapter's internal modules."""
