"""Reports on sweep results: Markdown tables, figures, and the seed's published figures beside them.

``write_report("results/NAME/results.parquet")`` writes ``report.md`` and ``figures/*.png`` next
to the table (``fastsim report`` on the command line). See ``docs/reports.md``.
"""
from .build import ReportResult, write_report
from .tables import ReportError, Summary, read_results, summarise

__all__ = ["write_report", "ReportResult", "ReportError", "Summary", "read_results", "summarise"]
