"""Events: the contract (``events``), sending (``producer``) and generating them (``simulator``)."""
