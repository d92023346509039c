"""One module per Google API family the stand-in serves."""
