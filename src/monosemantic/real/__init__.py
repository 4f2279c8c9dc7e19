"""A real transformer: model loading and activation sites, the text corpus, the sharded activation store."""
