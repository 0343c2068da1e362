"""Text out: committed recognizer text -> replacements -> focus latch -> typing back-end, with
every segment in the private journal (:mod:`.pipeline`, :mod:`.replacements`, :mod:`.focus`,
:mod:`.journal`)."""
