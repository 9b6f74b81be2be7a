"""Data tools that write RecBole atomic files: converters from the public raw files (:mod:`.convert`,
:mod:`.alimama`, :mod:`.amazon`, :mod:`.taobao`) and synthetic data, as atomic files
(:mod:`.synthetic`) or as raw files in the public layouts (:mod:`.synthetic_raw`)."""
