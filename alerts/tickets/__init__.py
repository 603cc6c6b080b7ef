"""Complaint tickets: import from complaint-system exports and linking to incidents.

* :mod:`alerts.tickets.importer` reads CSV / XLSX / JSON exports, validates
  every row and upserts tickets by id into a :class:`core.ports.StateStore`.
* :mod:`alerts.tickets.linking` ranks the tickets behind an incident (and the
  posts behind a ticket) with a transparent score and Chinese reasons.
"""
