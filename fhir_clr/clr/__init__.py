"""Closed-loop referral (CLR) business rules: code lists, business-day calendar, deadlines, the referral Task
workflow, noticing obligations and duplicate detection.

Everything here is a pure function over resource dicts (plus a caller context and "now"); code lists load from
the conformance resources in ``profiles/`` and thresholds from ``rules-config.json``, so a plan can change
either without a code change. :mod:`fhir_clr.clr.rules` plugs these rules into the domain-neutral engine as a
write rule (:mod:`fhir_clr.engine.rules`).
"""
