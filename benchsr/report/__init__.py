"""Leaderboards and paper tables, built from run folders only: rows, tables, Markdown/LaTeX/
HTML, figures, learning curves, claims and `benchsr reproduce`."""
