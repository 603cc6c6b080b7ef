"""Reports head office reads: the daily brief (舆情日报) and per-incident reports.

Sits between the stores (``storage``, ``nlp``) and the parts that show or send
reports (``dashboard``, ``alerts``), so both build the same document.

Gather (``brief.gather_daily_brief``, ``incident.gather_incident_report``: plain
dataclasses of ``model``, text already masked), then render
(``render.render_daily_brief`` / ``render_incident_report`` to Markdown, DOCX or
PDF, with ``charts``). Design notes: ``docs/reports.md``.
"""
