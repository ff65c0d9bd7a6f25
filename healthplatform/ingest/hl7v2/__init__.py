"""HL7 v2 on the wire: the pure-Python layer the MLLP listener, the durable inbox and the mapping workers share.

Nothing here touches Django, the database or a socket, so every later layer can call it on its hot path and the
tests need no fixtures:

- ``mllp``: the sans-IO MLLP frame decoder (bytes in, frames and framing events out) and the frame encoder;
- ``charset``: the codec of a message chosen from its raw bytes (MSH-18, else the sender's registered default)
  and the strict decode, a wrong declaration reported rather than guessed;
- ``message``: the tolerant tokenizer (the message's own encoding characters, CR / LF / CRLF segment ends,
  escapes decoded only when a value is read) and the header the intake needs before its commit;
- ``ack``: original and enhanced mode acknowledgements, built in the sender's version, encoding characters and
  character set;
- ``faults``: what the others report instead of raising: a table 0357 code, a table 0516 severity and an ERL
  location, ready for an ERR segment.

The rules followed, and where they depart from HL7 v2.5.1 chapter 2, are in docs/hl7v2-intake-research.md and
in the docstrings of each module.
"""
