"""A third party's parts, from outside the xmodal package: resolved by dotted path, never registered."""
