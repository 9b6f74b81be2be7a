"""Data tools that write RecBole atomic files: synthetic click logs (:mod:`.synthetic`)."""
