"""Reading finished (or still running) run folders: HTML reports and their pictures.

``rundata`` reads a run folder without torch; ``figures`` draws with matplotlib; ``build``
assembles the report; ``predictions`` runs a checkpoint on its val split.
"""
