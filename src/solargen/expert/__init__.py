"""The human-expert evaluation: a blinded real-vs-generated packet (``packet``), a local web form
that experts answer it with (``server``), and the statistics of their answers (``analysis``).

The study reports samples "indistinguishable to human experts"; these modules make that test
repeatable for any run. Layout on disk (``build_packet``)::

    <expert dir>/packet/items.json        served: the packet id and the opaque item ids
    <expert dir>/packet/images/<id>.png   served: one image each, names reveal nothing
    <expert dir>/key.csv                  never served: item → real/generated, run, view, source file
    <expert dir>/key.json                 never served: packet id, parameters, source image hashes
    <answers dir>/<expert>.jsonl          one answer per line, appended and fsynced per click
"""
