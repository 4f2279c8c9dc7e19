"""The HTML report: self-contained (figures embedded as PNG), opens offline."""
from monosemantic.report.html import Section, figure, table, write_report

__all__ = ["Section", "figure", "table", "write_report"]
