"""Reports computed from the stored referrals through the engine (the pure calculations live in
:mod:`fhir_clr.clr.report`; this package reads what they need, with the caller's access)."""
