"""The node config: Broker's settings, the crossbar config file, edits, secrets, reload planning, checks.

Settings are validated once into frozen dataclasses (:mod:`.settings`), every
error naming its JSON path; :mod:`.check` is ``broker check``. Files are read
and written here (atomically, :mod:`.atomicfile`), but nothing here imports
Twisted or crossbar.
"""
