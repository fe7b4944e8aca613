"""The CLR plug-in of the engine: :class:`~fhir_clr.clr.rules.write_rules.ClrWriteRules`, an engine write rule
(:mod:`fhir_clr.engine.rules`) that checks CLR Referrals, referral Tasks, notices and received files on every
planned write and adds the workflow's side effects (obligations, closures) to it."""
