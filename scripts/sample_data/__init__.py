"""Generator of the bundled sample corpus (``data/sample/``), run by ``make_sample_data.py``.

Modules, in the order ``main()`` uses them:

* ``common``      one ``random.Random(1234)``, table loading, row uniqueness / near-duplicate guard
* ``en_rows``, ``zh_rows``, ``reviews``, ``chats``: the clean rows of each family
* ``pii``, ``variants``: fake PII values; the row changes that make defects and near duplicates
* ``sample``      the four output files under construction: clean-row pools and the defect ledger
* ``popped``      defects made by changing a clean row (empty fields, HTML, control chars, ...)
* ``planted``     defects that are new rows (PII, over-long, foreign language, malformed JSON, ...)
* ``duplicates``  near and exact duplicates of clean rows that stay in the file
* ``output``      writing the files, self-checks and the printed report

The data the rows are made from (facts, word lists, templates, defect rows) lives in
``tables/*.json``.
"""
