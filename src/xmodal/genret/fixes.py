"""What a user is told to do when a generative model is missing (a module of its own: no torch to import)."""

TRAIN_FIX = "run `xmodal genret train` (or xmodal.genret.train_engine(engine))"
