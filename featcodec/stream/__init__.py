"""The stream: :mod:`.container` (the self-describing, checksummed, versioned byte
format: magic, header, sections), :mod:`.rans` (the compiled rANS entropy coder's
bindings) and :mod:`.varints` (LEB128 varints of whole arrays). docs/format.md specifies the bytes."""
