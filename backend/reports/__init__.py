"""Pipeline performance reports: where jobs spend their time, and whether they are slowing down.

``stats`` and ``regression`` are pure; ``repository`` holds the SQL; ``service`` builds the
report; ``render`` writes CSV and HTML, with the SVG charts of ``charts``.
"""
